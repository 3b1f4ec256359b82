#include "data/masking.h"

#include <torch/torch.h>

#include "data/alphabet.h"
#include "util/error.h"
#include "util/hash.h"

namespace performer {

MaskedTokens mask_tokens(const at::Tensor& tokens, const MaskingOptions& o, uint64_t seed) {
  if (tokens.dim() != 2 || tokens.scalar_type() != at::kLong || !tokens.device().is_cpu())
    throw Error("mask_tokens: expected a [B, L] int64 CPU tensor");
  if (o.rate < 0 || o.rate > 1 || o.mask_frac < 0 || o.random_frac < 0 || o.mask_frac + o.random_frac > 1)
    throw Error("masking: rate must be in [0, 1] and mask_frac + random_frac at most 1");
  at::Tensor src = tokens.contiguous();
  MaskedTokens out{src.clone(), torch::full_like(src, kIgnoreIndex)};
  const int64_t n = src.numel();
  const int64_t* t = src.data_ptr<int64_t>();
  int64_t* in = out.inputs.data_ptr<int64_t>();
  int64_t* lab = out.labels.data_ptr<int64_t>();
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t tok = t[i];
    if (tok < 0 || tok >= Alphabet::kSize || !Alphabet::is_residue(static_cast<Token>(tok))) continue;
    if (rng.uniform() >= o.rate) continue;
    lab[i] = tok;
    const double r = rng.uniform();
    if (r < o.mask_frac)
      in[i] = Alphabet::kMask;
    else if (r < o.mask_frac + o.random_frac)
      in[i] = Alphabet::kFirstResidue + static_cast<int64_t>(rng.below(Alphabet::kStandardAminoAcids));
    // else: unchanged
  }
  return out;
}

MaskedTokens next_token_targets(const at::Tensor& tokens, bool include_eos, const std::vector<uint8_t>& cut_start,
                                const std::vector<uint8_t>& cut_end) {
  if (tokens.dim() != 2 || tokens.scalar_type() != at::kLong || !tokens.device().is_cpu())
    throw Error("next_token_targets: expected a [B, L] int64 CPU tensor");
  at::Tensor src = tokens.contiguous();
  const int64_t B = src.size(0), L = src.size(1);
  if ((!cut_start.empty() && static_cast<int64_t>(cut_start.size()) != B) ||
      (!cut_end.empty() && static_cast<int64_t>(cut_end.size()) != B))
    throw Error("next_token_targets: one crop flag per row expected");
  MaskedTokens out{src, torch::full_like(src, kIgnoreIndex)};
  const int64_t* t = src.data_ptr<int64_t>();
  int64_t* lab = out.labels.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const bool eos_is_end = include_eos && (cut_end.empty() || !cut_end[static_cast<size_t>(b)]);
    for (int64_t i = 0; i + 1 < L; ++i) {
      const int64_t next = t[b * L + i + 1];
      const bool residue = next >= 0 && next < Alphabet::kSize && Alphabet::is_residue(static_cast<Token>(next));
      if (residue || (eos_is_end && next == Alphabet::kEos)) lab[b * L + i] = next;
    }
    if (!cut_start.empty() && cut_start[static_cast<size_t>(b)] && t[b * L] == Alphabet::kCls) lab[b * L] = kIgnoreIndex;
  }
  return out;
}

}  // namespace performer
