#include "experiments/loader_bench.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "data/batches.h"
#include "data/corpus.h"
#include "data/loader.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/process.h"
#include "util/text.h"

namespace performer {

namespace {

// Asks the kernel to drop the file's pages from the page cache (clean pages go at once; no root needed).
void drop_from_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open");
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

}  // namespace

int run_loader_bench(const LoaderBench& a) {
  if (a.cold) drop_from_page_cache(a.corpus);
  const double anon_before = static_cast<double>(anonymous_rss_bytes());
  const auto t_open = std::chrono::steady_clock::now();
  const Corpus corpus = Corpus::load(a.corpus, /*with_accessions=*/false);
  BatchOptions bo;
  bo.max_len = a.max_len;
  bo.tokens_per_batch = a.tokens_per_batch;
  bo.bucket_window = a.bucket_window;
  bo.seed = a.seed;
  bo.sample = parse_sampling(a.sample);
  bo.shuffle_block = a.shuffle_block;
  std::shared_ptr<const BatchSource> source;
  const SplitOrder* order = nullptr;
  if (a.concat) {
    auto c = std::make_shared<ConcatBatches>(corpus, Split::kTrain, bo);
    order = &c->order();
    source = c;
  } else {
    auto c = std::make_shared<SequenceBatches>(corpus, Split::kTrain, bo);
    order = &c->order();
    source = c;
  }
  const int64_t epoch_batches = source->num_batches(0);  // builds the epoch's window table (and starts epoch 1's)
  const double open_seconds = seconds_since(t_open);
  LoaderOptions lo;
  lo.prefetch = 0;  // on this thread: the time is the assembly's alone
  lo.mask_seed = a.seed;
  DataLoader loader(source, lo);
  Batch b;
  int64_t residues = 0, n = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (; n < a.batches && loader.next(b); ++n) residues += b.real_tokens;
  const double seconds = seconds_since(t0);
  // Crossing into the next epoch: its table was built in the background since this epoch's was used
  // (split_order.h).
  const int64_t next_epoch = b.epoch + 1;
  const bool ready_in_time = order->ready(next_epoch);
  const auto t_cross = std::chrono::steady_clock::now();
  source->num_batches(next_epoch);
  const double cross_seconds = seconds_since(t_cross);
  const double anon_after = static_cast<double>(anonymous_rss_bytes());
  std::printf("%s: %zu sequences (%lld in train), %s; %s batches, L %lld, %lld tokens per batch, shuffle block %lld, "
              "page cache %s\n",
              a.corpus.c_str(), corpus.size(), static_cast<long long>(corpus.stats().sequences[0]),
              corpus.storage().c_str(), a.concat ? "concatenated" : "length-bucketed", static_cast<long long>(a.max_len),
              static_cast<long long>(a.tokens_per_batch), static_cast<long long>(a.shuffle_block),
              a.cold ? "cold (dropped first)" : "warm");
  std::printf("open + epoch table: %.2f s (%lld batches in epoch 0; %lld proteins", open_seconds,
              static_cast<long long>(epoch_batches), static_cast<long long>(order->members()));
  if (order->clusters() >= 0) std::printf(" in %lld clusters", static_cast<long long>(order->clusters()));
  std::printf(", an epoch visits %lld: data.sample %s)\n", static_cast<long long>(order->per_epoch()), a.sample.c_str());
  std::printf("epoch %lld's table (built in the background): %s after the batches below; crossing into it "
              "waited %.3f s\n", static_cast<long long>(next_epoch), ready_in_time ? "ready" : "not yet ready",
              cross_seconds);
  std::printf("batches/s %.1f, residues/s %.0f (%lld batches, %lld real tokens, %.3f s, one thread, masking "
              "included)\n", static_cast<double>(n) / seconds, static_cast<double>(residues) / seconds,
              static_cast<long long>(n), static_cast<long long>(residues), seconds);
  std::printf("anonymous memory (RssAnon): %s before opening the corpus, %s after\n", human_bytes(anon_before).c_str(),
              human_bytes(anon_after).c_str());
  return 0;
}

}  // namespace performer
