// Corpora larger than memory: the memory-mapped corpus gives exactly what the in-memory one gives, and the
// epoch order is a seeded permutation that visits every protein once, without a per-protein array.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <chrono>
#include <set>
#include <thread>

#include "data/batches.h"
#include "data/loader.h"
#include "data/permutation.h"
#include "data/split_order.h"
#include "data/prepare.h"
#include "io/hdf5.h"
#include "io/mapped_array.h"
#include "test_util.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

std::string prepared(const TempDir& dir, const std::string& input = "trembl_600.fasta.gz") {
  PrepareOptions o;
  o.inputs = {data_path(input)};
  o.out = dir.file("corpus.h5");
  o.valid_frac = 0.1;
  o.test_frac = 0.05;
  o.progress = false;
  prepare_corpus(o);
  return o.out;
}

std::vector<Batch> stream(const std::shared_ptr<const BatchSource>& source, int64_t epochs) {
  LoaderOptions lo;
  lo.mask_seed = 11;
  lo.max_epochs = epochs;
  lo.prefetch = 2;
  DataLoader loader(source, lo);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

}  // namespace

TEST(Permutation, VisitsEveryIndexOnceAndDependsOnTheSeed) {
  for (uint64_t n : {1ull, 2ull, 3ull, 5ull, 64ull, 1000ull, 4097ull, 100003ull}) {
    const Permutation p(n, 42);
    std::vector<uint8_t> seen(n, 0);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t x = p(i);
      ASSERT_LT(x, n);
      ASSERT_EQ(seen[x], 0) << "n " << n << ": " << x << " twice";
      seen[x] = 1;
    }
  }
  const Permutation a(1000, 1), b(1000, 2);
  int same = 0, fixed = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    same += a(i) == b(i);
    fixed += a(i) == i;
  }
  EXPECT_LT(same, 20) << "two seeds should give unrelated orders";
  EXPECT_LT(fixed, 20) << "not close to the identity";
}

TEST(CorpusAccess, MappedAndInMemoryCorporaGiveIdenticalBatchesAndMasks) {
  TempDir dir;
  const std::string path = prepared(dir);
  const Corpus mapped = Corpus::load(path, false, /*map=*/true);
  const Corpus memory = Corpus::load(path, false, /*map=*/false);
  ASSERT_TRUE(mapped.mapped()) << mapped.storage();
  ASSERT_FALSE(memory.mapped());
  ASSERT_EQ(mapped.size(), memory.size());
  for (size_t i = 0; i < mapped.size(); ++i) {
    ASSERT_EQ(mapped.length(i), memory.length(i));
    ASSERT_EQ(mapped.split(i), memory.split(i));
    ASSERT_EQ(mapped.residues(i), memory.residues(i));
  }
  BatchOptions bo;
  bo.max_len = 128;  // crops some proteins
  bo.tokens_per_batch = 2048;
  bo.bucket_window = 100;  // several windows
  bo.seed = 5;
  for (bool concat : {false, true}) {
    std::shared_ptr<const BatchSource> a, b;
    if (concat) {
      a = std::make_shared<ConcatBatches>(mapped, Split::kTrain, bo);
      b = std::make_shared<ConcatBatches>(memory, Split::kTrain, bo);
    } else {
      a = std::make_shared<SequenceBatches>(mapped, Split::kTrain, bo);
      b = std::make_shared<SequenceBatches>(memory, Split::kTrain, bo);
    }
    const auto sa = stream(a, 2), sb = stream(b, 2);
    ASSERT_EQ(sa.size(), sb.size());
    for (size_t i = 0; i < sa.size(); ++i) {
      ASSERT_TRUE(torch::equal(sa[i].tokens, sb[i].tokens)) << "batch " << i << (concat ? " (concat)" : "");
      ASSERT_TRUE(torch::equal(sa[i].inputs, sb[i].inputs));
      ASSERT_TRUE(torch::equal(sa[i].labels, sb[i].labels));
    }
  }
}

TEST(CorpusAccess, EpochOrderCoversEverySplitMemberOnceAndChangesPerEpoch) {
  TempDir dir;
  const Corpus corpus = Corpus::load(prepared(dir), false);
  const auto train = corpus.indices(Split::kTrain);
  BatchOptions bo;
  bo.max_len = 1024;
  bo.tokens_per_batch = 4096;
  bo.bucket_window = 64;
  SequenceBatches source(corpus, Split::kTrain, bo);
  std::vector<size_t> first_epoch;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    std::multiset<size_t> seen;
    std::vector<size_t> order;
    for (int64_t i = 0; i < source.num_batches(epoch); ++i)
      for (int64_t id : source.batch(epoch, i).sequence_ids) {
        seen.insert(static_cast<size_t>(id));
        order.push_back(static_cast<size_t>(id));
      }
    EXPECT_EQ(seen, std::multiset<size_t>(train.begin(), train.end())) << "epoch " << epoch;
    if (epoch == 0)
      first_epoch = order;
    else
      EXPECT_NE(order, first_epoch) << "the order changes with the epoch";
  }
  // Concatenated: every residue of the split once per epoch, proteins in the epoch order.
  ConcatBatches concat(corpus, Split::kTrain, bo);
  int64_t residues = 0, eos = 0;
  for (int64_t i = 0; i < concat.num_batches(1); ++i) {
    const Batch b = concat.batch(1, i);
    residues += b.real_tokens;
    eos += (b.tokens == Alphabet::kEos).sum().item<int64_t>();
  }
  int64_t want = 0;
  for (size_t id : train) want += corpus.length(id) + 1;
  EXPECT_EQ(residues, want);
  EXPECT_EQ(eos, static_cast<int64_t>(train.size()));
}

TEST(CorpusAccess, ShuffledBlocksCoverEverySplitMemberOnceInRunsOfNeighbours) {
  // data.shuffle_block = 7 on 600 proteins (85 whole blocks and one of 5): every train protein once per
  // epoch, the blocks in an order that changes with the epoch, and within a block corpus order.
  TempDir dir;
  const Corpus corpus = Corpus::load(prepared(dir), false);
  const auto train = corpus.indices(Split::kTrain);
  auto count = [](const std::vector<size_t>& m) { return static_cast<int64_t>(m.size()); };
  SplitOrder order(corpus, Split::kTrain, 4, true, 64, count, Sampling::kProteins, 7);
  std::vector<size_t> first_epoch;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<size_t> ids;
    for (int64_t w = 0; w < order.windows(epoch); ++w)
      for (size_t id : *order.window(epoch, w).members) ids.push_back(id);
    EXPECT_EQ(std::multiset<size_t>(ids.begin(), ids.end()), std::multiset<size_t>(train.begin(), train.end()));
    int64_t neighbours = 0;  // consecutive visits within one block, in corpus order
    for (size_t k = 1; k < ids.size(); ++k) neighbours += ids[k] / 7 == ids[k - 1] / 7 && ids[k] > ids[k - 1];
    EXPECT_GT(neighbours, static_cast<int64_t>(ids.size()) / 2) << "epoch " << epoch;
    if (epoch == 0)
      first_epoch = ids;
    else
      EXPECT_NE(ids, first_epoch);
  }
  // Unshuffled, the block is irrelevant: corpus order.
  SplitOrder fixed(corpus, Split::kTrain, 4, false, 64, count, Sampling::kProteins, 7);
  std::vector<size_t> ids;
  for (int64_t w = 0; w < fixed.windows(0); ++w)
    for (size_t id : *fixed.window(0, w).members) ids.push_back(id);
  EXPECT_EQ(ids, train);
}

TEST(CorpusAccess, ACorruptTokenInAMappedCorpusIsAnErrorNamingFileAndSequence) {
  TempDir dir;
  const std::string path = prepared(dir, "real_excerpt.fasta");
  const Corpus clean = Corpus::load(path, false);
  // Find the first protein's residues in the file and overwrite one byte.
  const std::vector<Token> first = clean.residues(0);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string needle(first.begin(), first.begin() + 24);
  const size_t at = bytes.find(needle);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] = static_cast<char>(0xEE);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  const Corpus damaged = Corpus::load(path, false);
  ASSERT_TRUE(damaged.mapped());
  try {
    damaged.residues(0);
    ADD_FAILURE() << "a corrupt token was read";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("sequence 0"), std::string::npos) << msg;
  }
  EXPECT_THROW(Corpus::load(path, false, /*map=*/false), Error) << "the in-memory load checks every token";
}

// The order takes a split's size from /stats instead of counting it; the epoch table's pass checks it.
TEST(CorpusAccess, AStatsCountThatDisagreesWithTheSplitLabelsIsAnErrorNamingTheFile) {
  TempDir dir;
  const std::string path = prepared(dir, "real_excerpt.fasta");
  std::vector<int64_t> counts;
  {
    h5::Handle f = h5::open_file(path, /*writable=*/true);
    h5::Handle g = h5::open_group(f, "stats");
    counts = h5::read_attr_ints(g, "sequences");
    ASSERT_EQ(counts.size(), 3u);
    counts[0] += 1;
    h5::write_attr(g, "sequences", counts);
  }
  const Corpus damaged = Corpus::load(path, false);
  SplitOrder order(damaged, Split::kTrain, 7, true, 4, [](const std::vector<size_t>& ids) {
    return static_cast<int64_t>(ids.size());
  });
  try {
    order.window(0, 0);
    ADD_FAILURE() << "a wrong /stats count was accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("/stats says " + std::to_string(counts[0])), std::string::npos) << msg;
  }
}

TEST(CorpusAccess, BenchLoaderReportsRatesAndAnonymousMemory) {
  TempDir dir;
  const std::string path = prepared(dir);
  CliRun r = run_performer("bench loader --corpus " + path + " --max-len 256 --tokens-per-batch 4096 --batches 50");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("memory-mapped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("residues/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("RssAnon"), std::string::npos) << r.out;
  CliRun cold = run_performer("bench loader --corpus " + path + " --concat --max-len 512 --tokens-per-batch 1024 --cold");
  ASSERT_EQ(cold.status, 0) << cold.out;
  EXPECT_NE(cold.out.find("cold"), std::string::npos) << cold.out;
  CliRun bad = run_performer("bench loader --corpus " + dir.file("none.h5"));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.out.find("none.h5"), std::string::npos) << bad.out;
}

TEST(CorpusAccess, AnInterruptedTableBuildStopsAndALaterCallBuildsTheTable) {
  // 400,000 one-residue proteins in memory: a table pass takes long enough to be caught running.
  std::vector<std::string> seqs(400000, "A");
  std::vector<Split> splits(seqs.size(), Split::kTrain);
  const Corpus corpus = Corpus::from_sequences(seqs, splits);
  SplitOrder order(corpus, Split::kTrain, 5, /*shuffle=*/true, 4096,
                   [](const std::vector<size_t>& m) { return static_cast<int64_t>(m.size()); });
  // While interrupted, a build stops with an error at once.
  order.interrupt(true);
  EXPECT_THROW(order.windows(0), Error);
  order.interrupt(false);
  // Undone, the same call builds the table; the next epoch's table is built in the background meanwhile,
  // and an interruption that catches that build does not leave the epoch failing: the background builds it
  // again once the interruption is over (and a call meanwhile would build it itself).
  EXPECT_GT(order.windows(0), 0);
  order.interrupt(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  order.interrupt(false);
  bool built = false;
  for (int i = 0; i < 500 && !built; ++i) {
    built = order.ready(1);
    if (!built) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(built) << "the next epoch's table was not built again in the background";
  EXPECT_EQ(order.total(1), 400000);
  EXPECT_EQ(order.total(2), 400000);
}

TEST(CorpusAccess, AnEmptyContiguousDatasetMapsAsAnEmptyArray) {
  TempDir dir;
  const std::string path = dir.file("empty.h5");
  {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {0};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    hid_t d = H5Dcreate2(f, "tokens", H5T_NATIVE_UINT8, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(d, 0);
    H5Dclose(d);
    H5Sclose(space);
    H5Fclose(f);
  }
  auto map = std::make_shared<const h5::MappedFile>(path);
  h5::Handle f = h5::open_file(path);
  std::string why;
  const auto a = h5::MappedArray<uint8_t>::open(map, f, "tokens", why);
  ASSERT_TRUE(a.has_value()) << why;
  EXPECT_EQ(a->size(), 0u);
}
