// Masked-language-model corruption (BERT/ESM recipe). Of the residue positions (never <cls>, <eos>,
// <pad> or other special tokens) each is selected with probability `rate` (15%); a selected position is
// replaced by <mask> with probability 80%, by a uniformly random standard amino acid with 10%, and kept
// with 10%. Labels hold the original token at selected positions and -100 (ignored) elsewhere.
// The result is a pure function of (tokens, options, seed): evaluation and resume rely on that.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace performer {

struct MaskingOptions {
  double rate = 0.15;
  double mask_frac = 0.8;
  double random_frac = 0.1;
};

constexpr int64_t kIgnoreIndex = -100;

struct MaskedTokens {
  at::Tensor inputs;  // [B, L] int64: corrupted tokens
  at::Tensor labels;  // [B, L] int64: original token at selected positions, -100 elsewhere
};

// tokens: [B, L] int64 on CPU.
MaskedTokens mask_tokens(const at::Tensor& tokens, const MaskingOptions& options, uint64_t seed);

}  // namespace performer
