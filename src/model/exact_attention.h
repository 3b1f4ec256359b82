// Exact softmax attention, the Transformer baseline: softmax(q k^T / sqrt(d) + mask) v.
// q, k, v [B, H, L, d]; key_mask [B, L] bool (true = real token) or undefined. O(L^2) time and memory.
// On LibTorch 2.x the fused scaled-dot-product kernel is used; on 1.x the plain formula.
#pragma once
#include <ATen/core/Tensor.h>

namespace performer {

at::Tensor exact_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                           bool causal);
// The probabilities softmax(q k^T / sqrt(d) + mask) [B, H, L, L] (plain formula, any version).
at::Tensor exact_attention_matrix(const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_mask, bool causal);

}  // namespace performer
