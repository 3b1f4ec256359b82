// The order in which an epoch visits the proteins of one split, in memory that does not grow with the
// corpus: a seeded Permutation of the corpus indices (or corpus order, unshuffled), of which the split's
// members are taken in turn and grouped into windows of `window` proteins (data.bucket_window).
//
// A window is rebuilt on demand from where it starts in the permutation, so random access needs only a
// per-epoch table with, per window, that start and a cumulative count (batches, or stream tokens) that
// the caller computes from the window's members: 16 bytes per window, 0.004 bytes per protein for
// windows of 4096. Building the table is one pass over the corpus (its split labels and lengths, read
// through the memory map). Tables of the two most recent epochs and the two most recent windows are kept,
// since a prefetch thread may be one epoch or window ahead of the trainer.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "data/corpus.h"

namespace performer {

class SplitOrder {
 public:
  // What a window adds to the cumulative count: its number of batches, or its stream length.
  using Measure = std::function<int64_t(const std::vector<size_t>& members)>;

  SplitOrder(const Corpus& corpus, Split split, uint64_t seed, bool shuffle, int64_t window, Measure measure);

  int64_t members() const { return members_; }  // proteins of the split
  int64_t total(int64_t epoch) const;            // the cumulative count over the epoch
  // The window whose range of the cumulative count holds `at`, its members in epoch order and the count
  // before it. Requires 0 <= at < total(epoch).
  struct Window {
    int64_t index = 0, before = 0;
    std::shared_ptr<const std::vector<size_t>> members;
  };
  Window find(int64_t epoch, int64_t at) const;
  Window window(int64_t epoch, int64_t index) const;
  int64_t windows() const { return (members_ + window_ - 1) / window_; }

 private:
  struct Table {
    int64_t epoch = -1;
    std::vector<uint64_t> start;       // permutation position of each window's first member
    std::vector<int64_t> cumulative;   // [windows + 1]
  };
  const Table& table(int64_t epoch) const;  // requires mu_
  std::shared_ptr<const std::vector<size_t>> members_of(int64_t epoch, const Table& t, int64_t w) const;  // requires mu_
  uint64_t at(int64_t epoch, uint64_t i) const;  // the corpus index at permutation position i

  const Corpus& corpus_;
  Split split_;
  uint64_t seed_;
  bool shuffle_;
  int64_t window_;
  Measure measure_;
  int64_t members_ = 0;
  mutable std::mutex mu_;
  mutable Table tables_[2];
  mutable int next_table_ = 0;
  struct CachedWindow {
    int64_t epoch = -1, index = -1;
    std::shared_ptr<const std::vector<size_t>> members;
  };
  mutable CachedWindow windows_[2];
  mutable int next_window_ = 0;
};

}  // namespace performer
