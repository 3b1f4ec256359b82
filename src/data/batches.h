// Batches for training and evaluation, drawn from one split of a Corpus.
//
// Two sources share one interface (BatchSource): a batch is a pure function of (seed, epoch, index),
// so a saved position {epoch, index} reproduces the exact next batches after a resume.
//
// Both visit the split in an epoch order (data/split_order.h: a seeded permutation of the corpus, taken in
// windows of `bucket_window` proteins) that needs no per-protein array in memory.
//
//  * SequenceBatches: one protein per row, "<cls> residues <eos> <pad>...". Proteins longer than
//    max_len - 2 residues are cropped to a random window of max_len - 2 (drawn per epoch), keeping
//    <cls>/<eos> around the window. Batches are length-bucketed under a token budget: each window of
//    `bucket_window` proteins is sorted by length and cut greedily so that
//    rows x longest row <= tokens_per_batch; the window's batches are then shuffled. Every protein of the
//    split appears exactly once per epoch.
//  * ConcatBatches (TrEMBL-concat): the split's proteins, in the epoch order, are joined as
//    "residues <eos> residues <eos> ..." and cut into chunks of exactly max_len tokens, without padding;
//    only the epoch's last chunk is padded at its end. Every residue is used once per epoch.
//    Rows per batch = max(1, tokens_per_batch / max_len).
//
// With BatchOptions::sample = kClusters, "every protein" above reads "the epoch's chosen member of every
// cluster", and the number of batches differs between epochs.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/corpus.h"
#include "data/split_order.h"

namespace performer {

struct Batch {
  at::Tensor tokens;        // [B, L] int64: clean tokens
  at::Tensor padding_mask;  // [B, L] bool: true at real tokens, false at <pad>
  at::Tensor inputs;        // [B, L] int64: tokens after MLM masking (undefined if not masked)
  at::Tensor labels;        // [B, L] int64: targets, -100 where not predicted (undefined if not masked)
  std::vector<int64_t> sequence_ids;  // corpus indices of the rows (SequenceBatches only)
  // SequenceBatches only, per row: 1 where a cropped window starts after the protein's first residue
  // (cut_start) or ends before its last (cut_end), so the row's <cls> / <eos> are window edges, not the
  // protein's ends (next-token targets leave them out).
  std::vector<uint8_t> cut_start, cut_end;
  int64_t real_tokens = 0;  // non-padding tokens
  int64_t epoch = 0, index = 0;
  // false: another data-parallel rank's batch (data/loader.h); only real_tokens, epoch and index are set.
  bool local = true;
};

struct BatchOptions {
  int64_t tokens_per_batch = 16384;  // budget of rows x padded length
  int64_t max_len = 1024;            // tokens per row, specials included
  uint64_t seed = 0;
  bool shuffle = true;               // false: corpus order, no random crop (crop from the start)
  int64_t bucket_window = 4096;      // proteins sorted together for length bucketing
  Sampling sample = Sampling::kProteins;  // clusters: one member of each cluster per epoch (split_order.h)
  int64_t shuffle_block = 1;         // proteins of the corpus moved together by the epoch permutation
};

// What a batch holds, known without building it (cheap: from lengths only). Data-parallel ranks use it
// to agree on every step's batches while each builds only its own (data/loader.h).
struct BatchShape {
  int64_t rows = 0;
  int64_t real_tokens = 0;  // equals Batch::real_tokens of the built batch
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t num_batches(int64_t epoch) const = 0;
  virtual Batch batch(int64_t epoch, int64_t index) const = 0;
  virtual BatchShape shape(int64_t epoch, int64_t index) const = 0;
  // While on, work that may take long (an epoch table's pass over the corpus) stops at once with an Error:
  // a consumer stopping a thread that waits on it is not held up (data/split_order.h). It acts on every
  // user of the source: one data loader reads a source at a time.
  virtual void interrupt(bool /*on*/) const {}
};

class SequenceBatches : public BatchSource {
 public:
  SequenceBatches(const Corpus& corpus, Split split, BatchOptions options);
  // Not copied or moved: the epoch order's background thread calls back into this object.
  SequenceBatches(const SequenceBatches&) = delete;
  SequenceBatches& operator=(const SequenceBatches&) = delete;
  int64_t num_batches(int64_t epoch) const override;
  Batch batch(int64_t epoch, int64_t index) const override;
  BatchShape shape(int64_t epoch, int64_t index) const override;
  void interrupt(bool on) const override { order_->interrupt(on); }
  // The batches of one epoch as lists of corpus indices (deterministic in seed and epoch). Holds the whole
  // epoch: for tests and small corpora.
  std::vector<std::vector<size_t>> plan(int64_t epoch) const;
  const SplitOrder& order() const { return *order_; }

 private:
  using Plan = std::vector<std::vector<size_t>>;
  Plan window_plan(const std::vector<size_t>& members, int64_t epoch, int64_t window, bool shuffle_batches) const;
  // The batch at (epoch, index): the rows, from the window's plan (cached: the last two windows).
  std::vector<size_t> rows(int64_t epoch, int64_t index) const;

  const Corpus& corpus_;
  BatchOptions options_;
  std::unique_ptr<SplitOrder> order_;
  mutable std::mutex mu_;
  struct CachedPlan {
    int64_t epoch = -1, window = -1;
    std::shared_ptr<const Plan> plan;
  };
  mutable CachedPlan plans_[2];
  mutable int next_plan_ = 0;
};

class ConcatBatches : public BatchSource {
 public:
  ConcatBatches(const Corpus& corpus, Split split, BatchOptions options);
  ConcatBatches(const ConcatBatches&) = delete;  // as SequenceBatches
  ConcatBatches& operator=(const ConcatBatches&) = delete;
  int64_t num_batches(int64_t epoch) const override;
  Batch batch(int64_t epoch, int64_t index) const override;
  BatchShape shape(int64_t epoch, int64_t index) const override;
  void interrupt(bool on) const override { order_->interrupt(on); }
  int64_t num_chunks(int64_t epoch) const;
  int64_t rows_per_batch() const { return rows_; }
  const SplitOrder& order() const { return *order_; }

 private:
  int64_t stream_length(int64_t epoch) const { return order_->total(epoch); }  // residues + one <eos> per protein

  const Corpus& corpus_;
  BatchOptions options_;
  std::unique_ptr<SplitOrder> order_;
  int64_t rows_ = 1;
};

}  // namespace performer
