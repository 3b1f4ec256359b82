// Training targets. Bidirectional models learn the masked-language-model objective, causal models
// next-token prediction (Objective); the two never mix: a causal model trained on MLM labels at their own
// positions would learn to copy its (visible) input.
//
// Masked-language-model corruption (BERT/ESM recipe). Of the residue positions (never <cls>, <eos>,
// <pad> or other special tokens) each is selected with probability `rate` (data.mask_rate, 15% by default);
// a selected position is replaced by <mask> with probability mask_frac (80%), by a uniformly random
// standard amino acid with random_frac (10%), and kept otherwise (10%). Labels hold the original token at selected positions and -100 (ignored) elsewhere.
// The result is a pure function of (tokens, options, seed): evaluation and resume rely on that.
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace performer {

struct MaskingOptions {
  double rate = 0.15;
  double mask_frac = 0.8;
  double random_frac = 0.1;
};

struct MaskedTokens {
  at::Tensor inputs;  // [B, L] int64: corrupted tokens
  at::Tensor labels;  // [B, L] int64: original token at selected positions, -100 elsewhere
};

enum class Objective {
  kMaskedLm,   // bidirectional models: predict masked residues (mask_tokens)
  kNextToken,  // causal models: predict every next token from the tokens before it (next_token_targets)
};
// The objective of a model: next-token prediction for a causal one, masked LM otherwise.
inline Objective objective_for(bool causal) { return causal ? Objective::kNextToken : Objective::kMaskedLm; }

// tokens: [B, L] int64 on CPU.
MaskedTokens mask_tokens(const at::Tensor& tokens, const MaskingOptions& options, uint64_t seed);

// Next-token targets for causal models, without corruption: inputs = tokens, and the label at position i is
// token i+1 when that is a residue (or <eos>, with include_eos), else -100. A row "<cls> r1 .. rn <eos>"
// thus predicts r1 .. rn <eos> from "<cls> r1 .. rn": every residue, and the end of the protein, is a
// target (training uses include_eos = true). Evaluation scores residues only (include_eos = false), so its
// perplexity is over the same residues as the unigram baseline and `performer eval --mode causal`.
// In concatenated rows ("r .. r <eos> r .. r <eos>") the first residue after an <eos> is predicted too.
// A row cropped from a longer protein (cut_start / cut_end, one entry per row, or empty for none) has no
// target at its <cls> (the window's first residue is not the protein's first) and no <eos> target (the
// protein goes on).
MaskedTokens next_token_targets(const at::Tensor& tokens, bool include_eos, const std::vector<uint8_t>& cut_start = {},
                                const std::vector<uint8_t>& cut_end = {});

}  // namespace performer
