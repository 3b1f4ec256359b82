// Exact softmax attention, the Transformer baseline: softmax(q k^T / sqrt(d) + mask) v.
// q, k, v [B, H, L, d]; key_mask [B, L] bool (true = real token) or undefined. O(L^2) time.
// On LibTorch 2.x the fused scaled-dot-product kernel (at::scaled_dot_product_attention: flash-style on
// CPU and CUDA, memory-efficient on CUDA with a mask) is used on every device, and memory is O(L); on
// 1.x the plain formula stores the [B, H, L, L] probabilities for backward.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/version.h>

namespace performer {

// Whether exact_attention keeps [B, H, L, L] matrices for backward (the memory predictions follow it).
constexpr bool exact_attention_stores_scores() { return TORCH_VERSION_MAJOR < 2; }

// Causal with padding, on 2.x: the key mask must be a right padding (real tokens first, then padding, as
// every batch of data/batches.h is; a mask with a real token after padding is refused on CPU, unchecked
// on CUDA to spare a device sync per layer). The causal mask then already hides every padding key from
// every real query, so the fused kernel runs without an L x L mask; the outputs at padding positions
// differ from the plain formula's there (they are never read: the loss and every later layer's real
// queries ignore them). Bidirectional attention, and causal on 1.x, take any key mask.
at::Tensor exact_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                           bool causal);
// The probabilities softmax(q k^T / sqrt(d) + mask) [B, H, L, L] (plain formula, any version).
at::Tensor exact_attention_matrix(const at::Tensor& q, const at::Tensor& k, const at::Tensor& key_mask, bool causal);

}  // namespace performer
