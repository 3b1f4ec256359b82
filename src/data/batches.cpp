#include "data/batches.h"

#include <torch/torch.h>

#include "util/error.h"
#include "util/hash.h"
#include "data/split_order.h"

namespace performer {

namespace {
constexpr uint64_t kPlanStream = 1, kCropStream = 2, kConcatStream = 3;

void check_options(const BatchOptions& o) {
  if (o.max_len < 3) throw Error("batches: max_len must be at least 3 (<cls>, one residue, <eos>)");
  if (o.tokens_per_batch < o.max_len)
    throw Error("batches: tokens_per_batch (" + std::to_string(o.tokens_per_batch) + ") must be at least max_len (" +
                std::to_string(o.max_len) + ")");
  if (o.bucket_window < 1) throw Error("batches: bucket_window must be positive");
}

}  // namespace

SequenceBatches::SequenceBatches(const Corpus& corpus, Split split, BatchOptions options)
    : corpus_(corpus), options_(options) {
  check_options(options_);
  order_ = std::make_unique<SplitOrder>(corpus, split, options_.seed, options_.shuffle, options_.bucket_window,
                                        [this](const std::vector<size_t>& members) {
                                          return static_cast<int64_t>(window_plan(members, 0, 0, false).size());
                                        },
                                        options_.sample, options_.shuffle_block);
}

// A window's proteins sorted by row length and cut greedily under the token budget, then (shuffled runs)
// the batches in a seeded order.
SequenceBatches::Plan SequenceBatches::window_plan(const std::vector<size_t>& members, int64_t epoch, int64_t window,
                                                   bool shuffle_batches) const {
  // (row length, protein), each length read once from the corpus, sorted by length (ties in epoch order).
  std::vector<std::pair<int64_t, size_t>> sorted;
  sorted.reserve(members.size());
  for (size_t id : members) sorted.emplace_back(std::min<int64_t>(corpus_.length(id) + 2, options_.max_len), id);
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  Plan batches;
  std::vector<size_t> cur;
  int64_t longest = 0;
  for (const auto& [len, id] : sorted) {
    // Sorted ascending, so the new row is the longest: budget = rows x len.
    if (!cur.empty() && static_cast<int64_t>(cur.size() + 1) * std::max(longest, len) > options_.tokens_per_batch) {
      batches.push_back(std::move(cur));
      cur.clear();
      longest = 0;
    }
    cur.push_back(id);
    longest = std::max(longest, len);
  }
  if (!cur.empty()) batches.push_back(std::move(cur));
  if (shuffle_batches) {
    Rng rng(derive_seed(options_.seed, kPlanStream, static_cast<uint64_t>(epoch), static_cast<uint64_t>(window)));
    shuffle(batches.begin(), batches.end(), rng);
  }
  return batches;
}

std::vector<size_t> SequenceBatches::rows(int64_t epoch, int64_t index) const {
  if (index < 0 || index >= num_batches(epoch))
    throw Error("batch index " + std::to_string(index) + " out of range for epoch " + std::to_string(epoch));
  const SplitOrder::Window w = order_->find(epoch, index);
  std::lock_guard<std::mutex> lock(mu_);
  for (const CachedPlan& c : plans_)
    if (c.epoch == epoch && c.window == w.index) return (*c.plan)[static_cast<size_t>(index - w.before)];
  auto plan = std::make_shared<const Plan>(window_plan(*w.members, epoch, w.index, options_.shuffle));
  plans_[next_plan_] = CachedPlan{epoch, w.index, plan};
  next_plan_ = 1 - next_plan_;
  return (*plan)[static_cast<size_t>(index - w.before)];
}

std::vector<std::vector<size_t>> SequenceBatches::plan(int64_t epoch) const {
  Plan all;
  for (int64_t w = 0; w < order_->windows(epoch); ++w) {
    const SplitOrder::Window win = order_->window(epoch, w);
    for (auto& b : window_plan(*win.members, epoch, w, options_.shuffle)) all.push_back(std::move(b));
  }
  return all;
}

int64_t SequenceBatches::num_batches(int64_t epoch) const { return order_->total(epoch); }

BatchShape SequenceBatches::shape(int64_t epoch, int64_t index) const {
  const std::vector<size_t> ids = rows(epoch, index);
  BatchShape s;
  s.rows = static_cast<int64_t>(ids.size());
  for (size_t id : ids) s.real_tokens += std::min(corpus_.length(id), options_.max_len - 2) + 2;
  return s;
}

Batch SequenceBatches::batch(int64_t epoch, int64_t index) const {
  const std::vector<size_t> rows = this->rows(epoch, index);
  const int64_t max_res = options_.max_len - 2;
  int64_t width = 0;
  for (size_t id : rows) width = std::max(width, std::min(corpus_.length(id), max_res) + 2);
  const auto B = static_cast<int64_t>(rows.size());
  Batch b;
  b.epoch = epoch;
  b.index = index;
  b.tokens = torch::full({B, width}, static_cast<int64_t>(Alphabet::kPad), torch::kLong);
  b.padding_mask = torch::zeros({B, width}, torch::kBool);
  int64_t* t = b.tokens.data_ptr<int64_t>();
  bool* m = b.padding_mask.data_ptr<bool>();
  std::vector<Token> buffer;  // one row's residues, read from the corpus
  for (int64_t r = 0; r < B; ++r) {
    const size_t id = rows[static_cast<size_t>(r)];
    const int64_t len = corpus_.length(id);
    int64_t start = 0, n = len;
    if (len > max_res) {
      n = max_res;
      if (options_.shuffle) {
        Rng rng(derive_seed(options_.seed, kCropStream, static_cast<uint64_t>(epoch), id));
        start = static_cast<int64_t>(rng.below(static_cast<uint64_t>(len - max_res + 1)));
      }
    }
    buffer.resize(static_cast<size_t>(n));
    corpus_.copy_residues(id, start, n, buffer.data());
    int64_t* row = t + r * width;
    row[0] = Alphabet::kCls;
    for (int64_t i = 0; i < n; ++i) row[1 + i] = buffer[static_cast<size_t>(i)];
    row[n + 1] = Alphabet::kEos;
    std::fill(m + r * width, m + r * width + n + 2, true);
    b.real_tokens += n + 2;
    b.sequence_ids.push_back(static_cast<int64_t>(id));
    b.cut_start.push_back(start > 0);
    b.cut_end.push_back(start + n < len);
  }
  return b;
}

ConcatBatches::ConcatBatches(const Corpus& corpus, Split split, BatchOptions options)
    : corpus_(corpus), options_(options) {
  check_options(options_);
  order_ = std::make_unique<SplitOrder>(corpus, split, derive_seed(options_.seed, kConcatStream), options_.shuffle,
                                        options_.bucket_window, [this](const std::vector<size_t>& members) {
                                          int64_t n = 0;
                                          for (size_t id : members) n += corpus_.length(id) + 1;
                                          return n;
                                        },
                                        options_.sample, options_.shuffle_block);
  rows_ = std::max<int64_t>(1, options_.tokens_per_batch / options_.max_len);
}

int64_t ConcatBatches::num_chunks(int64_t epoch) const { return (stream_length(epoch) + options_.max_len - 1) / options_.max_len; }

int64_t ConcatBatches::num_batches(int64_t epoch) const { return (num_chunks(epoch) + rows_ - 1) / rows_; }

BatchShape ConcatBatches::shape(int64_t epoch, int64_t index) const {
  if (index < 0 || index >= num_batches(epoch))
    throw Error("batch index " + std::to_string(index) + " out of range for epoch " + std::to_string(epoch));
  const int64_t L = options_.max_len, first_chunk = index * rows_;
  BatchShape s;
  s.rows = std::min(rows_, num_chunks(epoch) - first_chunk);
  s.real_tokens = std::min((first_chunk + s.rows) * L, stream_length(epoch)) - first_chunk * L;  // only the last chunk is short
  return s;
}

Batch ConcatBatches::batch(int64_t epoch, int64_t index) const {
  if (index < 0 || index >= num_batches(epoch))
    throw Error("batch index " + std::to_string(index) + " out of range for epoch " + std::to_string(epoch));
  const int64_t L = options_.max_len;
  const int64_t first_chunk = index * rows_;
  const int64_t B = std::min(rows_, num_chunks(epoch) - first_chunk);
  const int64_t stream_end = stream_length(epoch);
  Batch b;
  b.epoch = epoch;
  b.index = index;
  b.tokens = torch::full({B, L}, static_cast<int64_t>(Alphabet::kPad), torch::kLong);
  b.padding_mask = torch::zeros({B, L}, torch::kBool);
  int64_t* t = b.tokens.data_ptr<int64_t>();
  bool* m = b.padding_mask.data_ptr<bool>();
  std::vector<Token> buffer;  // residues read from the corpus
  for (int64_t r = 0; r < B; ++r) {
    int64_t pos = (first_chunk + r) * L;  // stream position of the chunk's first token
    const int64_t end = std::min(pos + L, stream_end);
    int64_t* row = t + r * L;
    int64_t col = 0;
    while (pos < end) {
      // The window holding stream position pos, and within it the protein (its stream start: start).
      const SplitOrder::Window w = order_->find(epoch, pos);
      int64_t start = w.before;
      for (size_t id : *w.members) {
        const int64_t len = corpus_.length(id);
        if (pos >= start + len + 1) {
          start += len + 1;
          continue;
        }
        if (pos >= end) break;
        const int64_t within = pos - start;  // 0..len; len is the <eos>
        const int64_t take = std::min(len - within, end - pos);
        if (take > 0) {
          buffer.resize(static_cast<size_t>(take));
          corpus_.copy_residues(id, within, take, buffer.data());
          for (int64_t i = 0; i < take; ++i) row[col++] = buffer[static_cast<size_t>(i)];
          pos += take;
        }
        if (pos < end && pos == start + len) {
          row[col++] = Alphabet::kEos;
          ++pos;
        }
        start += len + 1;
      }
    }
    std::fill(m + r * L, m + r * L + col, true);
    b.real_tokens += col;
  }
  return b;
}

}  // namespace performer
