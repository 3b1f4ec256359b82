// Attention in linear time from feature maps (FAVOR), bidirectional and causal.
//
// Shapes: qf, kf [B, H, L, m] (features of queries and keys; key rows already zero at padding),
//         v [B, H, L, d]  ->  out [B, H, L, d].
//
// Bidirectional:   out = D^-1 (qf (kf^T v)),   D = diag(qf (kf^T 1_L))
//   kf^T v is [m, d]: cost O(L m d) and memory O(L m + m d) instead of O(L^2).
// Causal:          out_i = (sum_{j<=i} (qf_i . kf_j) v_j) / (sum_{j<=i} qf_i . kf_j)
//   computed chunk by chunk (chunk c): inside a chunk with the explicit masked c x c product, across chunks
//   through the running prefix S = sum_j kf_j v_j^T [m, d]. A custom backward recomputes the prefix sums
//   (forward for dq, reversed for dk and dv) instead of storing one [m, d] state per position, so memory
//   is O(L m + L d + c^2 + m d) per head, linear in L.
//   With a chunk log-scale s [B, H, C, m] (causal softmax features, kernels.h) the keys of chunk c carry the
//   shift s_c and the prefix is rescaled row-wise by exp(s_{c-1} - s_c) <= 1 before chunk c (and the
//   backward's suffix by exp(s_c - s_{c+1})), so each chunk sees all earlier keys under its own shift.
// D is floored at the smallest normal float instead of adding an epsilon; with the stabilized softmax
// features D >= 1/m for bidirectional attention (kernels.h), so there the floor only guards degenerate
// inputs (no real key at all).
#pragma once
#include <ATen/core/Tensor.h>

namespace performer {

// The floor of the normalizer D: the smallest normal number of the dtype (float64 or float32).
double denominator_floor(at::ScalarType dtype);

// v [..., d] -> [v, 1] [..., d+1]: one product with it yields both the numerator (first d columns) and the
// normalizer D (last).
at::Tensor with_ones(const at::Tensor& v);

at::Tensor linear_attention(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v);
at::Tensor causal_linear_attention(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v,
                                   int64_t chunk = 128, const at::Tensor& chunk_log_scale = {});

// The unnormalized causal product N_i = sum_{j<=i} (q_i . k_j) v_j with the memory-linear custom backward.
// q, k [B, H, L, m], v [B, H, L, e] -> [B, H, L, e]; chunk_log_scale [B, H, ceil(L/chunk), m] or undefined.
at::Tensor causal_dot_product(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t chunk = 128,
                              const at::Tensor& chunk_log_scale = {});

// Explicit O(L^2) reference: D^-1 (qf kf^T [masked lower-triangular if causal]) v. For tests and for
// exporting attention matrices. With a chunk log-scale, key j of chunk c' seen from query i of chunk c
// is scaled by exp(s_c' - s_c), as in the chunked sum.
at::Tensor explicit_feature_attention(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v, bool causal,
                                      int64_t chunk = 0, const at::Tensor& chunk_log_scale = {});
// The implicit attention matrix D^-1 qf kf^T [B, H, L, L] (rows sum to 1 over real keys).
at::Tensor feature_attention_matrix(const at::Tensor& qf, const at::Tensor& kf, bool causal, int64_t chunk = 0,
                                    const at::Tensor& chunk_log_scale = {});

}  // namespace performer
