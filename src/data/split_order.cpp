#include "data/split_order.h"

#include <algorithm>

#include "data/permutation.h"
#include "util/error.h"
#include "util/hash.h"

namespace performer {

namespace {
constexpr uint64_t kOrderStream = 11;
}

SplitOrder::SplitOrder(const Corpus& corpus, Split split, uint64_t seed, bool shuffle, int64_t window, Measure measure)
    : corpus_(corpus), split_(split), seed_(seed), shuffle_(shuffle), window_(window), measure_(std::move(measure)) {
  if (window_ < 1) throw Error("batches: bucket_window must be positive");
  for (size_t i = 0; i < corpus_.size(); ++i) members_ += corpus_.split(i) == split_ ? 1 : 0;
  if (members_ == 0) throw Error(corpus.path() + ": the " + split_name(split) + " split has no sequences");
}

uint64_t SplitOrder::at(int64_t epoch, uint64_t i) const {
  if (!shuffle_) return i;
  return Permutation(corpus_.size(), derive_seed(seed_, kOrderStream, static_cast<uint64_t>(epoch)))(i);
}

const SplitOrder::Table& SplitOrder::table(int64_t epoch) const {
  for (const Table& t : tables_)
    if (t.epoch == epoch) return t;
  Table& t = tables_[next_table_];
  next_table_ = 1 - next_table_;
  t = Table{};
  t.cumulative.push_back(0);
  const Permutation perm(corpus_.size(), derive_seed(seed_, kOrderStream, static_cast<uint64_t>(epoch)));
  std::vector<size_t> members;
  members.reserve(static_cast<size_t>(window_));
  uint64_t first = 0;
  for (uint64_t i = 0; i < corpus_.size(); ++i) {
    const size_t id = shuffle_ ? perm(i) : i;
    if (corpus_.split(id) != split_) continue;
    if (members.empty()) first = i;
    members.push_back(id);
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
  t.epoch = epoch;
  return t;
}

std::shared_ptr<const std::vector<size_t>> SplitOrder::members_of(int64_t epoch, const Table& t, int64_t w) const {
  for (const CachedWindow& c : windows_)
    if (c.epoch == epoch && c.index == w) return c.members;
  auto members = std::make_shared<std::vector<size_t>>();
  members->reserve(static_cast<size_t>(window_));
  for (uint64_t i = t.start[static_cast<size_t>(w)]; i < corpus_.size() && static_cast<int64_t>(members->size()) < window_; ++i) {
    const size_t id = at(epoch, i);
    if (corpus_.split(id) == split_) members->push_back(id);
  }
  CachedWindow& c = windows_[next_window_];
  next_window_ = 1 - next_window_;
  c = CachedWindow{epoch, w, members};
  // A mapped corpus reads this window's proteins, and the next window's, from disk in the background:
  // thousands of scattered reads in flight at once instead of one page fault per protein.
  corpus_.prefetch(*members);
  if (w + 1 < static_cast<int64_t>(t.start.size())) {
    std::vector<size_t> next;
    next.reserve(static_cast<size_t>(window_));
    for (uint64_t i = t.start[static_cast<size_t>(w + 1)]; i < corpus_.size() && static_cast<int64_t>(next.size()) < window_; ++i) {
      const size_t id = at(epoch, i);
      if (corpus_.split(id) == split_) next.push_back(id);
    }
    corpus_.prefetch(next);
  }
  return members;
}

int64_t SplitOrder::total(int64_t epoch) const {
  std::lock_guard<std::mutex> lock(mu_);
  return table(epoch).cumulative.back();
}

SplitOrder::Window SplitOrder::find(int64_t epoch, int64_t at) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Table& t = table(epoch);
  if (at < 0 || at >= t.cumulative.back())
    throw Error("position " + std::to_string(at) + " out of range for epoch " + std::to_string(epoch));
  const auto w = static_cast<int64_t>(std::upper_bound(t.cumulative.begin(), t.cumulative.end(), at) - t.cumulative.begin()) - 1;
  return Window{w, t.cumulative[static_cast<size_t>(w)], members_of(epoch, t, w)};
}

SplitOrder::Window SplitOrder::window(int64_t epoch, int64_t w) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Table& t = table(epoch);
  if (w < 0 || w >= static_cast<int64_t>(t.start.size())) throw Error("window " + std::to_string(w) + " out of range");
  return Window{w, t.cumulative[static_cast<size_t>(w)], members_of(epoch, t, w)};
}

}  // namespace performer
