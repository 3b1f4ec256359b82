// The trainer's evaluation on a split of its corpus, over the first max_sequences proteins (or chunks) in
// corpus order, batched as in training. (`performer eval` scores any protein file: analysis/perplexity.h;
// both use model/loss.h.)
// Causal models (Objective::kNextToken): next-token perplexity of the residues, each predicted from the
// tokens before it (no corruption; data/masking.h). Bidirectional models: masked LM with a fixed, seeded
// mask of eval.mask_rate (by default data.mask_rate) of the tokens, so every evaluation of every checkpoint
// sees the same positions.
// Perplexity = exp(mean cross-entropy over the masked positions), over the full 33-token softmax.
// Two corruptions of the selected positions are used (EvalSettings::masking):
//   standard  80% <mask>, 10% random amino acid, 10% unchanged: the training corruption, and what
//             fairseq/ESM and the Performer paper's code report as masked perplexity;
//   strict    every selected position replaced by <mask>. With 10% of the targets visible in the input,
//             copying them lowers the standard figure a lot (on the quickstart: 14.4 vs 17.4) without any
//             knowledge of proteins, so the strict figure is the honest one to set against the unigram
//             baseline, which never sees the target.
#pragma once
#include <torch/types.h>

#include <memory>

#include "data/batches.h"
#include "data/corpus.h"
#include "data/masking.h"
#include "model/encoder.h"

namespace performer {

struct EvalSettings {
  int64_t max_len = 1024;
  int64_t tokens_per_batch = 8192;
  bool concat = false;
  int64_t max_sequences = 2000;  // 0 = the whole split
  uint64_t seed = 1234;
  Objective objective = Objective::kMaskedLm;
  MaskingOptions masking;  // masked LM: standard 80/10/10 by default; strict_masking() for all-<mask>
  // Data-parallel ranks split the evaluation: batch i is scored by rank i % shard_count, and the sums of
  // the ranks (EvalResult::loss_sum, predicted, correct, sequences) add up to the one-process figures.
  int64_t shard_rank = 0, shard_count = 1;
};

struct EvalResult {
  double loss = 0;        // mean cross-entropy (nats) over predicted positions
  double perplexity = 0;
  double accuracy = 0;    // argmax == target
  int64_t predicted = 0;  // positions scored (masked residues, or residues predicted from their left)
  int64_t sequences = 0;  // rows evaluated
  double loss_sum = 0;    // the sums the figures above come from
  int64_t correct = 0;
};

// The figures of summed counts (from one process, or the sum over ranks).
EvalResult eval_result(double loss_sum, int64_t predicted, int64_t correct, int64_t sequences);

inline MaskingOptions strict_masking(double rate) { return MaskingOptions{rate, 1.0, 0.0}; }

EvalResult evaluate(Encoder& model, const Corpus& corpus, Split split, const EvalSettings& settings,
                           const torch::Device& device);

// The batches evaluate() scores: the split in corpus order, batched as in training. Building it is a pass
// over the corpus (a second one for its first epoch table): the trainer builds it once and keeps it.
std::unique_ptr<BatchSource> evaluation_batches(const Corpus& corpus, Split split, const EvalSettings& settings);
EvalResult evaluate(Encoder& model, const BatchSource& source, const EvalSettings& settings,
                    const torch::Device& device);


}  // namespace performer
