#include "data/split_order.h"

#include <algorithm>
#include <chrono>

#include "data/permutation.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/names.h"

namespace performer {

namespace {
constexpr uint64_t kOrderStream = 11, kSampleStream = 12;
constexpr uint64_t kCancelCheck = 1 << 16;  // proteins between checks of the cancel flag

// A table build stopped by interrupt() or the destructor (not a failure of the corpus).
struct BuildStopped : Error {
  using Error::Error;
};
}

const std::vector<std::string>& sampling_names() {
  static const std::vector<std::string> names = {"proteins", "clusters"};
  return names;
}
Sampling parse_sampling(const std::string& s) { return parse_name<Sampling>(s, sampling_names(), "data.sample"); }
std::string sampling_name(Sampling s) { return name_of(s, sampling_names()); }

SplitOrder::SplitOrder(const Corpus& corpus, Split split, uint64_t seed, bool shuffle, int64_t window, Measure measure,
                       Sampling sampling, int64_t block)
    : corpus_(corpus),
      split_(split),
      seed_(seed),
      shuffle_(shuffle),
      window_(window),
      block_(block),
      measure_(std::move(measure)),
      sampling_(sampling) {
  if (window_ < 1) throw Error("batches: bucket_window must be positive");
  if (block_ < 1) throw Error("batches: shuffle_block must be positive");
  if (!shuffle_) block_ = 1;
  blocks_ = (corpus_.size() + static_cast<uint64_t>(block_) - 1) / static_cast<uint64_t>(block_);
  if (sampling_ == Sampling::kClusters && !corpus_.has_clusters())
    throw Error(corpus_.path() + ": data.sample: clusters needs a corpus with sequence clusters (" +
                corpus_.no_clusters() + "; see prepare --clusters, or data.clusters for a sequence file)");
  // The split's size from /stats: checked against the split labels by every epoch table's pass (protein
  // sampling) or by the pass below (cluster sampling).
  members_ = corpus_.stats().sequences[static_cast<size_t>(split_)];
  const bool sampled = sampling_ == Sampling::kClusters;
  clusters_ = sampled ? 0 : corpus_.stats().split_clusters[static_cast<size_t>(split_)];
  // Under cluster sampling the columns are checked once here, so that visits() can trust them: a rank
  // below its cluster's size. (This is the one pass over the corpus besides the epoch tables.)
  int64_t counted = 0;
  for (size_t i = 0; sampled && i < corpus_.size(); ++i) {
    if (corpus_.split(i) != split_) continue;
    ++counted;
    const int64_t c = corpus_.cluster(i);
    if (c < 0 || static_cast<uint64_t>(c) >= corpus_.cluster_indices() || corpus_.cluster_rank(i) < 0 ||
        corpus_.cluster_rank(i) >= corpus_.cluster_size(static_cast<uint64_t>(c)))
      throw Error(corpus_.path() + ": corrupt corpus: sequence " + std::to_string(i) +
                  " has an invalid cluster index or rank (/cluster, /cluster_rank, /cluster_size disagree)");
    if (corpus_.cluster_rank(i) == 0) ++clusters_;
  }
  if (sampled && counted != members_) throw Error(mismatch(counted));
  if (members_ == 0) throw Error(corpus.path() + ": the " + split_name(split) + " split has no sequences");
}

std::string SplitOrder::mismatch(int64_t counted) const {
  return corpus_.path() + ": corrupt corpus: the " + split_name(split_) + " split has " + std::to_string(counted) +
         " sequences, /stats says " + std::to_string(members_);
}

SplitOrder::~SplitOrder() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_ = true;
  }
  wake_.notify_all();
  if (builder_.joinable()) builder_.join();
}

bool SplitOrder::visits(size_t id, int64_t epoch) const {
  if (sampling_ != Sampling::kClusters) return true;
  const auto c = static_cast<uint64_t>(corpus_.cluster(id));
  const auto size = static_cast<uint64_t>(corpus_.cluster_size(c));
  if (size == 1) return true;
  const uint64_t pick = derive_seed(seed_, kSampleStream, static_cast<uint64_t>(epoch), c) % size;
  return static_cast<uint64_t>(corpus_.cluster_rank(id)) == pick;
}

Permutation SplitOrder::permutation(int64_t epoch) const {
  return Permutation(blocks_, derive_seed(seed_, kOrderStream, static_cast<uint64_t>(epoch)));
}

uint64_t SplitOrder::at(const Permutation& perm, uint64_t i) const {
  if (!shuffle_) return i;
  const auto b = static_cast<uint64_t>(block_);
  return perm(i / b) * b + i % b;  // >= size() in the last block's gap
}

SplitOrder::Table SplitOrder::build_table(int64_t epoch) const {
  Table t;
  t.cumulative.push_back(0);
  const Permutation perm = permutation(epoch);
  std::vector<size_t> members;
  members.reserve(static_cast<size_t>(window_));
  uint64_t first = 0;
  int64_t visited = 0;
  for (uint64_t i = 0; i < positions(); ++i) {
    if (i % kCancelCheck == 0 && (cancel_.load(std::memory_order_relaxed) || interrupted()))
      throw BuildStopped("epoch table: stopped (interrupted or cancelled)");
    const uint64_t id = at(perm, i);
    if (id >= corpus_.size() || corpus_.split(id) != split_ || !visits(id, epoch)) continue;
    if (members.empty()) first = i;
    members.push_back(id);
    ++visited;
    if (static_cast<int64_t>(members.size()) == window_) {
      t.start.push_back(first);
      t.cumulative.push_back(t.cumulative.back() + measure_(members));
      members.clear();
    }
  }
  if (!members.empty()) {
    t.start.push_back(first);
    t.cumulative.push_back(t.cumulative.back() + measure_(members));
  }
  if (sampling_ == Sampling::kProteins && visited != members_) throw Error(mismatch(visited));
  return t;
}

void SplitOrder::interrupt(bool on) const {
  std::lock_guard<std::mutex> lock(mu_);
  interrupts_.fetch_add(on ? 1 : -1);
  if (!on) wake_.notify_all();  // the background builder holds back while interrupted
}

void SplitOrder::build_ahead() const {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] {
      return cancel_ || (!interrupted() && wanted_ != failed_ && !tables_.count(wanted_));
    });
    if (cancel_) return;
    const int64_t epoch = wanted_;
    auto promise = std::make_shared<std::promise<TablePtr>>();
    tables_[epoch] = promise->get_future().share();
    lock.unlock();
    bool ok = true, stopped = false;
    try {
      promise->set_value(std::make_shared<const Table>(build_table(epoch)));
    } catch (const BuildStopped&) {
      promise->set_exception(std::current_exception());  // rethrown to whoever waits for this epoch
      ok = false;
      stopped = true;
    } catch (...) {
      promise->set_exception(std::current_exception());
      ok = false;
    }
    lock.lock();
    if (ok) continue;
    // Stopped by interrupt(): dropped, and built again once the interruption is over. Failed for another
    // reason (a corrupt corpus): not tried again in the background; a call reports the error.
    if (stopped) {
      // The epoch's entry, unless a call has replaced it meanwhile with one of its own (running, or built).
      auto it = tables_.find(epoch);
      bool failed_entry = false;
      if (it != tables_.end() && it->second.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
        try {
          it->second.get();
        } catch (...) {
          failed_entry = true;
        }
      }
      if (failed_entry) tables_.erase(it);
    } else {
      failed_ = epoch;
    }
  }
}

SplitOrder::TablePtr SplitOrder::table(int64_t epoch) const {
  if (!varies()) epoch = 0;  // every epoch has the same order and members
  TablePtr t;
  for (bool retried = false;; retried = true) {
    std::shared_future<TablePtr> ready;
    std::shared_ptr<std::promise<TablePtr>> mine;  // set when this call builds the table itself
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = tables_.find(epoch);
      if (it != tables_.end()) {
        ready = it->second;
      } else {
        mine = std::make_shared<std::promise<TablePtr>>();
        ready = mine->get_future().share();
        tables_[epoch] = ready;
      }
    }
    if (mine) {
      try {
        mine->set_value(std::make_shared<const Table>(build_table(epoch)));
      } catch (...) {
        mine->set_exception(std::current_exception());
      }
    }
    try {
      t = ready.get();
      break;
    } catch (...) {
      // A failed build is not kept (an entry of a later attempt still running is). One that another thread
      // ran (the background builder, interrupted or failed) is tried again here, once, so that this call
      // reports its own error, if any.
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = tables_.find(epoch);
        if (it != tables_.end() && it->second.wait_for(std::chrono::seconds(0)) == std::future_status::ready)
          tables_.erase(it);
      }
      if (mine || retried || interrupted()) throw;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  // The trainer may be an epoch behind its prefetch thread, so what is kept is relative to the newest
  // epoch asked for: the two before it, it, and the next (at most 4 tables of 16 bytes per window).
  newest_ = std::max(newest_, epoch);
  for (auto it = tables_.begin(); it != tables_.end();)
    it = it->first < newest_ - 2 && it->first != epoch ? tables_.erase(it) : std::next(it);
  if (varies() && !cancel_ && wanted_ != newest_ + 1) {
    wanted_ = newest_ + 1;
    if (!builder_.joinable()) {
      try {
        builder_ = std::thread([this] { build_ahead(); });
      } catch (const std::system_error&) {
        wanted_ = -1;  // no thread: every epoch is built on demand
        return t;
      }
    }
    wake_.notify_one();
  }
  return t;
}

std::vector<size_t> SplitOrder::collect(int64_t epoch, uint64_t first) const {
  const Permutation perm = permutation(epoch);
  std::vector<size_t> members;
  members.reserve(static_cast<size_t>(window_));
  for (uint64_t i = first; i < positions() && static_cast<int64_t>(members.size()) < window_; ++i) {
    const uint64_t id = at(perm, i);
    if (id < corpus_.size() && corpus_.split(id) == split_ && visits(id, epoch)) members.push_back(id);
  }
  return members;
}

std::shared_ptr<const std::vector<size_t>> SplitOrder::members_of(int64_t epoch, const Table& t, int64_t w) const {
  for (const CachedWindow& c : windows_)
    if (c.epoch == epoch && c.index == w) return c.members;
  auto members = std::make_shared<const std::vector<size_t>>(collect(epoch, t.start[static_cast<size_t>(w)]));
  CachedWindow& c = windows_[next_window_];
  next_window_ = 1 - next_window_;
  c = CachedWindow{epoch, w, members};
  // A mapped corpus reads this window's proteins, and the next window's, from disk in the background:
  // thousands of scattered reads in flight at once instead of one page fault per protein.
  corpus_.prefetch(*members);
  if (w + 1 < static_cast<int64_t>(t.start.size())) corpus_.prefetch(collect(epoch, t.start[static_cast<size_t>(w + 1)]));
  return members;
}

bool SplitOrder::ready(int64_t epoch) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = tables_.find(varies() ? epoch : 0);
  return it != tables_.end() && it->second.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

int64_t SplitOrder::windows(int64_t epoch) const { return static_cast<int64_t>(table(epoch)->start.size()); }

int64_t SplitOrder::total(int64_t epoch) const { return table(epoch)->cumulative.back(); }

SplitOrder::Window SplitOrder::find(int64_t epoch, int64_t at) const {
  const TablePtr t = table(epoch);
  if (at < 0 || at >= t->cumulative.back())
    throw Error("position " + std::to_string(at) + " out of range for epoch " + std::to_string(epoch));
  const auto w = static_cast<int64_t>(std::upper_bound(t->cumulative.begin(), t->cumulative.end(), at) - t->cumulative.begin()) - 1;
  std::lock_guard<std::mutex> lock(mu_);
  return Window{w, t->cumulative[static_cast<size_t>(w)], members_of(epoch, *t, w)};
}

SplitOrder::Window SplitOrder::window(int64_t epoch, int64_t w) const {
  const TablePtr t = table(epoch);
  if (w < 0 || w >= static_cast<int64_t>(t->start.size())) throw Error("window " + std::to_string(w) + " out of range");
  std::lock_guard<std::mutex> lock(mu_);
  return Window{w, t->cumulative[static_cast<size_t>(w)], members_of(epoch, *t, w)};
}

}  // namespace performer
