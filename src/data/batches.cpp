#include "data/batches.h"

#include <torch/torch.h>

#include "util/error.h"
#include "util/hash.h"

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

std::vector<size_t> split_ids(const Corpus& corpus, Split split) {
  auto ids = corpus.indices(split);
  if (ids.empty())
    throw Error(corpus.path() + ": the " + split_name(split) + " split has no sequences");
  return ids;
}
}  // namespace

SequenceBatches::SequenceBatches(const Corpus& corpus, Split split, BatchOptions options)
    : corpus_(corpus), options_(options), ids_(split_ids(corpus, split)) {
  check_options(options_);
}

std::vector<std::vector<size_t>> SequenceBatches::plan(int64_t epoch) const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_plan(epoch);
}

const std::vector<std::vector<size_t>>& SequenceBatches::cached_plan(int64_t epoch) const {
  for (int slot = 0; slot < 2; ++slot)
    if (plan_epoch_[slot] == epoch) return plan_[slot];
  std::vector<size_t> order = ids_;
  Rng rng(derive_seed(options_.seed, kPlanStream, static_cast<uint64_t>(epoch)));
  if (options_.shuffle) shuffle(order.begin(), order.end(), rng);
  const int64_t max_len = options_.max_len;
  auto row_len = [&](size_t id) { return std::min<int64_t>(corpus_.length(id) + 2, max_len); };
  std::vector<std::vector<size_t>> batches;
  const size_t window = static_cast<size_t>(options_.bucket_window);
  for (size_t w = 0; w < order.size(); w += window) {
    auto first = order.begin() + static_cast<std::ptrdiff_t>(w);
    auto last = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), w + window));
    std::stable_sort(first, last, [&](size_t a, size_t b) { return row_len(a) < row_len(b); });
    std::vector<size_t> cur;
    int64_t longest = 0;
    for (auto it = first; it != last; ++it) {
      int64_t len = row_len(*it);
      // Sorted ascending, so the new row is the longest: budget = rows x len.
      if (!cur.empty() && static_cast<int64_t>(cur.size() + 1) * std::max(longest, len) > options_.tokens_per_batch) {
        batches.push_back(std::move(cur));
        cur.clear();
        longest = 0;
      }
      cur.push_back(*it);
      longest = std::max(longest, len);
    }
    if (!cur.empty()) batches.push_back(std::move(cur));
  }
  if (options_.shuffle) shuffle(batches.begin(), batches.end(), rng);
  const int slot = next_slot_;
  next_slot_ = 1 - next_slot_;
  plan_[slot] = std::move(batches);
  plan_epoch_[slot] = epoch;
  return plan_[slot];
}

int64_t SequenceBatches::num_batches(int64_t epoch) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(cached_plan(epoch).size());
}

namespace {
const std::vector<size_t>& planned_rows(const std::vector<std::vector<size_t>>& p, int64_t epoch, int64_t index) {
  if (index < 0 || index >= static_cast<int64_t>(p.size()))
    throw Error("batch index " + std::to_string(index) + " out of range for epoch " + std::to_string(epoch));
  return p[static_cast<size_t>(index)];
}
}  // namespace

BatchShape SequenceBatches::shape(int64_t epoch, int64_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto& rows = planned_rows(cached_plan(epoch), epoch, index);
  BatchShape s;
  s.rows = static_cast<int64_t>(rows.size());
  for (size_t id : rows) s.real_tokens += std::min(corpus_.length(id), options_.max_len - 2) + 2;
  return s;
}

Batch SequenceBatches::batch(int64_t epoch, int64_t index) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto& rows = planned_rows(cached_plan(epoch), epoch, index);
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
    const Token* src = corpus_.sequence(id) + start;
    int64_t* row = t + r * width;
    row[0] = Alphabet::kCls;
    for (int64_t i = 0; i < n; ++i) row[1 + i] = src[i];
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
    : corpus_(corpus), options_(options), ids_(split_ids(corpus, split)) {
  check_options(options_);
  for (size_t id : ids_) stream_length_ += corpus_.length(id) + 1;
  rows_ = std::max<int64_t>(1, options_.tokens_per_batch / options_.max_len);
}

int64_t ConcatBatches::num_chunks() const { return (stream_length_ + options_.max_len - 1) / options_.max_len; }

int64_t ConcatBatches::num_batches(int64_t) const { return (num_chunks() + rows_ - 1) / rows_; }

void ConcatBatches::prepare_epoch(int64_t epoch) const {
  if (epoch_ == epoch) return;
  order_ = ids_;
  if (options_.shuffle) {
    Rng rng(derive_seed(options_.seed, kConcatStream, static_cast<uint64_t>(epoch)));
    shuffle(order_.begin(), order_.end(), rng);
  }
  starts_.resize(order_.size() + 1);
  starts_[0] = 0;
  for (size_t i = 0; i < order_.size(); ++i) starts_[i + 1] = starts_[i] + corpus_.length(order_[i]) + 1;
  epoch_ = epoch;
}

BatchShape ConcatBatches::shape(int64_t epoch, int64_t index) const {
  if (index < 0 || index >= num_batches(epoch))
    throw Error("batch index " + std::to_string(index) + " out of range for epoch " + std::to_string(epoch));
  const int64_t L = options_.max_len, first_chunk = index * rows_;
  BatchShape s;
  s.rows = std::min(rows_, num_chunks() - first_chunk);
  s.real_tokens = std::min((first_chunk + s.rows) * L, stream_length_) - first_chunk * L;  // only the last chunk is short
  return s;
}

Batch ConcatBatches::batch(int64_t epoch, int64_t index) const {
  if (index < 0 || index >= num_batches(epoch))
    throw Error("batch index " + std::to_string(index) + " out of range for epoch " + std::to_string(epoch));
  std::lock_guard<std::mutex> lock(mu_);
  prepare_epoch(epoch);
  const int64_t L = options_.max_len;
  const int64_t first_chunk = index * rows_;
  const int64_t B = std::min(rows_, num_chunks() - first_chunk);
  Batch b;
  b.epoch = epoch;
  b.index = index;
  b.tokens = torch::full({B, L}, static_cast<int64_t>(Alphabet::kPad), torch::kLong);
  b.padding_mask = torch::zeros({B, L}, torch::kBool);
  int64_t* t = b.tokens.data_ptr<int64_t>();
  bool* m = b.padding_mask.data_ptr<bool>();
  for (int64_t r = 0; r < B; ++r) {
    int64_t pos = (first_chunk + r) * L;  // stream position of the chunk's first token
    const int64_t end = std::min(pos + L, stream_length_);
    // The protein containing stream position pos.
    size_t k = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), pos) - starts_.begin()) - 1;
    int64_t* row = t + r * L;
    int64_t col = 0;
    while (pos < end) {
      const size_t id = order_[k];
      const int64_t len = corpus_.length(id);
      const int64_t within = pos - starts_[k];  // 0..len; len is the <eos>
      const int64_t take = std::min(len - within, end - pos);
      const Token* src = corpus_.sequence(id) + within;
      for (int64_t i = 0; i < take; ++i) row[col++] = src[i];
      pos += take;
      if (pos < end && pos == starts_[k] + len) {
        row[col++] = Alphabet::kEos;
        ++pos;
      }
      if (pos == starts_[k + 1]) ++k;
    }
    std::fill(m + r * L, m + r * L + col, true);
    b.real_tokens += col;
  }
  return b;
}

}  // namespace performer
