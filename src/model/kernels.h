// The kernel math of FAVOR+ as small pure functions (no modules, no state).
//
// Shapes: B batch, H heads, L positions, d head dimension, m random features.
//
// Random features. Softmax attention exp(q.k / sqrt(d)) is, for x' = x d^-1/4 and w ~ N(0, I_d),
//     exp(q'.k') = E_w[ exp(w.q' - |q'|^2/2) exp(w.k' - |k'|^2/2) ],
// so with m draws w_1..w_m (rows of W, [m, d]) the positive feature map
//     phi(x) = exp(W x' - |x'|^2/2) / sqrt(m)                                      [.., m]
// gives phi(q).phi(k) ~ exp(q.k / sqrt(d)), an unbiased estimate with positive values (FAVOR+). The rows
// of W are drawn in blocks of d mutually orthogonal directions (QR / Gram-Schmidt of a Gaussian block),
// which lowers the variance; row norms are then drawn from chi(d), the norm of a Gaussian vector, so each
// row is still marginally N(0, I_d) (or fixed at sqrt(d), option).
//
// Stabilizers. exp() overflows for large logits, so a constant is subtracted inside it:
//   queries: per row, s_q = max_m (W q' - |q'|^2/2): a per-query constant cancels in D^-1 (row normalization);
//   keys:    one s_k = max over positions and features of (W k' - |k'|^2/2) per (batch, head): a constant
//            shared by all keys also cancels. Padding positions are left out of that max.
// Both are detached (they cancel, so no gradient should flow through them). The largest feature is then
// exactly 1/sqrt(m), so nothing overflows, and no constant epsilon is added to the features: after the
// key shift, key features can be ~1e-8, and an additive 1e-4 would swamp them and flatten attention to
// mean(V). Instead the normalizer D is floored (linear_attention.h).
//
// ReLU kernel (generalized attention): phi(x) = ReLU(W x) / sqrt(m) + eps, with the same W, or
// phi(x) = ReLU(x) + eps without a projection (deterministic variant, m = d).
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace performer {

enum class RowNorms { kChi, kSqrtD };

// W [m, d], float64 on CPU: ceil(m/d) blocks of d orthonormal rows (the last block truncated), rows scaled
// by chi(d) draws or sqrt(d). A pure function of (m, d, norms, seed): the same on every machine (own RNG
// and Gram-Schmidt in double precision, no BLAS).
at::Tensor orthogonal_gaussian_projection(int64_t m, int64_t d, RowNorms norms, uint64_t seed);
// Plain i.i.d. Gaussian W [m, d] (the non-orthogonal baseline), float64.
at::Tensor gaussian_projection(int64_t m, int64_t d, uint64_t seed);

// FAVOR+ softmax features. x [B, H, L, d], W [m, d]; key_mask [B, L] bool (true = real token) or undefined.
// Queries: row stabilizer; keys: shared stabilizer over real positions, and features zeroed at padding.
at::Tensor softmax_features_query(const at::Tensor& x, const at::Tensor& W);
at::Tensor softmax_features_key(const at::Tensor& x, const at::Tensor& W, const at::Tensor& key_mask);

// ReLU features. W undefined: the deterministic variant ReLU(x) + eps. Keys are zeroed at padding.
at::Tensor relu_features(const at::Tensor& x, const at::Tensor& W, double eps, const at::Tensor& key_mask);

// Zeroes the rows of features f [B, H, L, m] at padding positions of key_mask [B, L].
at::Tensor mask_rows(const at::Tensor& f, const at::Tensor& key_mask);

}  // namespace performer
