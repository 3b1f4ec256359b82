// The order in which an epoch visits the proteins of one split, in memory that does not grow with the
// corpus: a seeded Permutation of the corpus indices (or corpus order, unshuffled), of which the split's
// members are taken in turn and grouped into windows of `window` proteins (data.bucket_window).
//
// With `block` > 1 (data.shuffle_block) the permutation moves blocks of `block` consecutive corpus proteins
// instead of single proteins: a window then reads window/block runs of neighbouring proteins from the file
// instead of `window` scattered ones, which is what a corpus on a disk that reads scattered pages slowly
// needs (the window's sort by length and the shuffled batches still mix the blocks).
//
// Sampling::kClusters (data.sample: clusters) visits every sequence cluster of the split once per epoch,
// through one member chosen by (seed, epoch, cluster): the member whose rank within its cluster (corpus
// /cluster_rank, written by prepare --clusters) equals hash(seed, epoch, cluster) mod the cluster's size.
// The choice is a test on each protein alone, so it needs no per-cluster state in memory, and an epoch's
// members are again a pure function of (seed, epoch).
//
// A window is rebuilt on demand from where it starts in the permutation, so random access needs only a
// per-epoch table with, per window, that start and a cumulative count (batches, or stream tokens) that
// the caller computes from the window's members: 16 bytes per window, 0.004 bytes per protein for
// windows of 4096. Building the table is one pass over the corpus (its split labels and lengths, read
// through the memory map; with cluster sampling also the cluster columns). The tables of the newest epoch
// asked for, the two before and the next are kept, and the two most recent windows, since a prefetch
// thread may be an epoch or a window ahead of the trainer. When an epoch's table is used, the next epoch's
// is built on a background thread, so crossing an epoch does not wait for a pass over the corpus (36-66 s
// for 81.8 M proteins).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "data/corpus.h"
#include "data/permutation.h"

namespace performer {

// What an epoch of training visits (data.sample): every protein of the split, or every sequence cluster
// once through one of its members.
enum class Sampling { kProteins, kClusters };
const std::vector<std::string>& sampling_names();  // "proteins", "clusters"
Sampling parse_sampling(const std::string& s);
std::string sampling_name(Sampling s);

class SplitOrder {
 public:
  // What a window adds to the cumulative count: its number of batches, or its stream length.
  using Measure = std::function<int64_t(const std::vector<size_t>& members)>;

  // Throws Error for Sampling::kClusters on a corpus without cluster sampling data (prepare --clusters).
  SplitOrder(const Corpus& corpus, Split split, uint64_t seed, bool shuffle, int64_t window, Measure measure,
             Sampling sampling = Sampling::kProteins, int64_t block = 1);
  ~SplitOrder();
  SplitOrder(const SplitOrder&) = delete;
  SplitOrder& operator=(const SplitOrder&) = delete;

  int64_t members() const { return members_; }      // proteins of the split
  int64_t clusters() const { return clusters_; }    // clusters of the split (-1: the corpus has none)
  int64_t per_epoch() const { return sampling_ == Sampling::kClusters ? clusters_ : members_; }  // visited per epoch
  // Whether protein `id` is visited in `epoch` (always, unless sampling by cluster).
  bool visits(size_t id, int64_t epoch) const;
  int64_t total(int64_t epoch) const;            // the cumulative count over the epoch
  // The window whose range of the cumulative count holds `at`, its members in epoch order and the count
  // before it. Requires 0 <= at < total(epoch).
  struct Window {
    int64_t index = 0, before = 0;
    std::shared_ptr<const std::vector<size_t>> members;
  };
  Window find(int64_t epoch, int64_t at) const;
  Window window(int64_t epoch, int64_t index) const;
  int64_t windows(int64_t epoch) const;
  // Whether the epoch's table is built (by a call, or in the background after the epoch before was used).
  bool ready(int64_t epoch) const;
  // interrupt(true) makes every running table build stop at once (its callers get an Error), until
  // interrupt(false): a data loader stopping its prefetch thread does not wait for a whole corpus pass.
  // It acts on every user of this order: one data loader reads it at a time. A background build it stopped
  // is started again once the interruption is over.
  void interrupt(bool on) const;

 private:
  struct Table {
    std::vector<uint64_t> start;       // permutation position of each window's first member
    std::vector<int64_t> cumulative;   // [windows + 1]
  };
  using TablePtr = std::shared_ptr<const Table>;
  // The epoch's table: cached, being built (waited for), or built on this thread; then starts building the
  // next epoch's in the background. Called without mu_.
  TablePtr table(int64_t epoch) const;
  Table build_table(int64_t epoch) const;  // one pass over the corpus; throws when cancelled
  void build_ahead() const;  // the background thread: builds epoch wanted_'s table when it is missing
  // Whether epochs differ in order or members (unshuffled, unsampled: one table serves every epoch).
  bool varies() const { return shuffle_ || sampling_ == Sampling::kClusters; }
  // Up to `window_` members visited in `epoch` from permutation position `first` on.
  std::vector<size_t> collect(int64_t epoch, uint64_t first) const;
  std::shared_ptr<const std::vector<size_t>> members_of(int64_t epoch, const Table& t, int64_t w) const;  // requires mu_
  std::string mismatch(int64_t counted) const;  // the error for a split whose size disagrees with /stats
  Permutation permutation(int64_t epoch) const;  // of the blocks
  uint64_t positions() const { return blocks_ * static_cast<uint64_t>(block_); }  // >= corpus size
  // The corpus index at position i of the epoch order; >= the corpus size for a position past its end.
  uint64_t at(const Permutation& perm, uint64_t i) const;

  const Corpus& corpus_;
  Split split_;
  uint64_t seed_;
  bool shuffle_;
  int64_t window_;
  int64_t block_;
  uint64_t blocks_ = 0;
  Measure measure_;
  Sampling sampling_;
  int64_t members_ = 0, clusters_ = -1;
  mutable std::mutex mu_;
  mutable std::map<int64_t, std::shared_future<TablePtr>> tables_;  // the latest epochs' (at most 4)
  mutable int64_t newest_ = 0;             // the newest epoch asked for
  mutable std::thread builder_;            // builds the next epoch's table (started by the first table())
  mutable std::condition_variable wake_;   // wakes builder_: wanted_ changed, or cancel_
  mutable int64_t wanted_ = -1;            // the epoch builder_ should have built (newest_ + 1)
  mutable int64_t failed_ = -1;            // an epoch whose background build failed
  mutable std::atomic<bool> cancel_{false};
  mutable std::atomic<int> interrupts_{0};  // interrupt(true) calls not yet undone
  bool interrupted() const { return interrupts_.load(std::memory_order_relaxed) > 0; }
  struct CachedWindow {
    int64_t epoch = -1, index = -1;
    std::shared_ptr<const std::vector<size_t>> members;
  };
  mutable CachedWindow windows_[2];
  mutable int next_window_ = 0;
};

}  // namespace performer
