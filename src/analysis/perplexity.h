// Held-out perplexity of a trained model on any set of proteins (`performer eval`).
//
// Proteins longer than the model's max_len - 2 residues are scored in consecutive non-overlapping
// windows of max_len - 2 residues, each wrapped as <cls> window <eos>, so every residue is scored exactly
// once and nothing is cut silently (a window sees only its own residues as context).
//
// Modes:
//   masked  eval.mask_rate (by default data.mask_rate, 15%) of the residues masked with a fixed seed (repeat r uses
//           seed (seed, r)), averaged over
//           `repeats`; two corruptions as in training's evaluation: standard (the run's data.mask_frac <mask>,
//           data.random_frac random, the rest unchanged; 80/10/10 by default) and strict (all <mask>).
//   pseudo  pseudo-perplexity: every residue masked once, alone (a window of n residues becomes n rows).
//   causal  for causal models: next-token perplexity of the residues (each predicted from its left context).
// Perplexity = exp(total cross-entropy / scored residues), over the full 33-token softmax.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "model/encoder.h"

namespace performer {

struct SequenceScore {
  std::string accession;
  int64_t length = 0;
  int64_t scored = 0;   // residue predictions scored (summed over repeats)
  double nll = 0;       // summed cross-entropy (nats)
  int64_t correct = 0;  // argmax == target
  double unigram_nll = 0;  // summed -log p_train(residue) over the same predictions (0 when no frequencies)
};

enum class EvalMode { kMasked, kPseudo, kCausal };
const std::vector<std::string>& eval_mode_names();  // "masked", "pseudo", "causal"
EvalMode parse_eval_mode(const std::string& s);
std::string eval_mode_name(EvalMode m);

struct PerplexityOptions {
  EvalMode mode = EvalMode::kMasked;
  bool strict = false;          // masked mode: all selected residues -> <mask>
  int64_t repeats = 1;
  uint64_t seed = 1234;
  double mask_rate = 0.15;    // the run's eval.mask_rate (by default its data.mask_rate), data.mask_frac and
  double mask_frac = 0.8;     // data.random_frac (`performer eval` sets them from the checkpoint's config)
  double random_frac = 0.1;
  int64_t tokens_per_batch = 16384;
  std::vector<double> train_frequencies;  // 33 entries, for the unigram baseline; may be empty
};

// Throws a one-line Error unless `mode` suits the model: causal models are scored only by next-token
// perplexity, bidirectional ones only by the masked modes.
void check_mode(EvalMode mode, bool causal_model);

// Scores proteins (accession, residues) with the model (eval mode, no gradient).
std::vector<SequenceScore> score_proteins(Encoder& model, const std::vector<std::pair<std::string, std::string>>& proteins,
                                          const PerplexityOptions& options, const torch::Device& device);

struct PerplexitySummary {
  int64_t sequences = 0, scored = 0;
  double loss = 0, perplexity = 0, accuracy = 0;
  double ci_low = 0, ci_high = 0;   // 95% interval of the perplexity, per-sequence bootstrap (1000 resamples)
  double unigram_perplexity = 0;    // of the same predictions under the train frequencies (NaN without them)
};
PerplexitySummary summarize(const std::vector<SequenceScore>& scores, uint64_t seed = 7);

// Two models scored on the same proteins with the same masks (a[i] and b[i] the same protein, the same
// scored residues): perplexity a - perplexity b with a 95% paired bootstrap interval (proteins resampled
// together, 1000 resamples). Pairing removes the spread between proteins, which dominates each model's own
// interval, so a difference far smaller than either interval can still be resolved.
struct PairedDifference {
  int64_t sequences = 0;
  double a = 0, b = 0;             // pooled perplexities on the paired proteins
  double difference = 0, ci_low = 0, ci_high = 0;
};
// An Error when the lists differ in length, a pair differs in scored residues, or nothing was scored.
PairedDifference paired_difference(const std::vector<SequenceScore>& a, const std::vector<SequenceScore>& b,
                                   uint64_t seed = 7);

}  // namespace performer
