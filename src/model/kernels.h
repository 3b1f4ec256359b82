// The kernel math of FAVOR+ as small pure functions (no modules, no state).
//
// Shapes: B batch, H heads, L positions, d head dimension, m random features, C causal chunks.
//
// Random features. Softmax attention exp(q.k / sqrt(d)) is, for x' = x d^-1/4 and w ~ N(0, I_d),
//     exp(q'.k') = E_w[ exp(w.q' - |q'|^2/2) exp(w.k' - |k'|^2/2) ],
// so with m draws w_1..w_m (rows of W, [m, d]) the positive feature map
//     phi(x) = exp(W x' - |x'|^2/2) / sqrt(m)                                      [.., m]
// gives phi(q).phi(k) ~ exp(q.k / sqrt(d)), an unbiased estimate with positive values (FAVOR+). The rows
// of W are drawn in blocks of d mutually orthogonal directions (QR / Gram-Schmidt of a Gaussian block),
// which lowers the variance; row norms are then drawn from chi(d), the norm of a Gaussian vector, so each
// row is still marginally N(0, I_d) and the estimate stays unbiased. The fixed norm sqrt(d) (RowNorms::kSqrtD)
// has lower variance but is biased: the features no longer average to exp(q'.k').
//
// Stabilizers. Write a_ir = w_r.q_i' - |q_i'|^2/2 and l_jr = w_r.k_j' - |k_j'|^2/2 (the logits of feature r).
// phi(q_i).phi(k_j) = sum_r exp(a_ir + l_jr) / m overflows for large logits, so constants are moved out:
//   keys:    per feature r, s_r = max over real keys j of l_jr; key features exp(l_jr - s_r) <= 1;
//   queries: the same s_r moved into the query, exp(a_ir + s_r - t_i) with t_i = max_r (a_ir + s_r), so
//            each product exp(a_ir + l_jr - t_i) is unchanged up to the per-query constant t_i, which
//            cancels in the row normalization D^-1.
// Both are detached (they cancel, so no gradient flows through them). Because the feature r* that attains
// t_i has query feature 1/sqrt(m) and some real key has key feature 1/sqrt(m) in it, every query's
// normalizer is D_i >= 1/m (bidirectional). Float32 drops a key feature only when it is ~87 nats below
// the largest key of the same feature, and a query feature only when it is ~87 nats below the query's
// best feature; either way the dropped term is below e^-87 times a term of the same D_i, so nothing that
// matters is lost, and no constant epsilon is needed (an additive 1e-4 would flatten attention to
// mean(V)). One shift shared by all features and keys gives no such bound: a query whose products all lie
// ~87+ nats below (its best feature) + (the largest key logit overall) is left with D at its floor and an
// output of 0 (tested against a float64 log-space reference).
// Padding keys get the logit -inf before exp (masked, not multiplied after it): they are left out of the
// shifts, and a padding key whose logit lies far above the real keys' can neither overflow to inf nor turn
// inf * 0 into NaN.
//
// Causal mode: s_r over all keys would let a future key change earlier outputs (numerically: by pushing
// the earlier keys into underflow). There the stabilizer is a running maximum per chunk of `chunk`
// positions: s_{c,r} = max of l_jr over the real keys of chunks 0..c; keys of chunk c use s_c, queries of
// chunk c absorb s_c, and the causal sum rescales its prefix by exp(s_{c-1} - s_c) <= 1 when the maximum
// grows (as streaming log-sum-exp does). A key therefore never influences the features of an earlier
// chunk. Within its own chunk it shares the shift with the earlier positions: a key exceeding the earlier
// keys of its chunk by more than ~87 nats in a feature can push them (and, through t_i, an earlier query's
// other features) out of float range, and D >= 1/m holds only for the chunk's last query. chunk = 1 makes
// the guarantee exact per position, at a cost in speed.
//
// ReLU kernel (generalized attention): phi(x) = ReLU(W x) / sqrt(m) + eps, with the same W, or
// phi(x) = ReLU(x) + eps without a projection (deterministic variant, m = d). No stabilizer is needed.
//
// Everything here runs in float32 at least (float64 stays float64), whatever the input dtype.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace performer {

enum class RowNorms { kChi, kSqrtD };
const std::vector<std::string>& row_norms_names();  // "chi", "sqrt-d"
RowNorms parse_row_norms(const std::string& s);
std::string row_norms_name(RowNorms r);

// W [m, d], float64 on CPU: ceil(m/d) blocks of d orthonormal rows (the last block truncated), rows scaled
// by chi(d) draws or sqrt(d). A pure function of (m, d, norms, seed): the same on every machine (own RNG
// and Gram-Schmidt in double precision, no BLAS).
at::Tensor orthogonal_gaussian_projection(int64_t m, int64_t d, RowNorms norms, uint64_t seed);
// Plain i.i.d. Gaussian W [m, d] (the non-orthogonal baseline), float64.
at::Tensor gaussian_projection(int64_t m, int64_t d, uint64_t seed);

// Feature maps of the queries and keys of one attention call, ready for linear_attention.h.
struct FeatureMaps {
  at::Tensor q, k;              // [B, H, L, m]; key rows are zero at padding
  // Causal softmax features only: s_c [B, H, C, m], the key shift of chunk c (chunks of `chunk` positions);
  // the causal sum must rescale by it. Undefined otherwise.
  at::Tensor chunk_log_scale;
  int64_t chunk = 0;
};

// The softmax-kernel logits W x' - |x'|^2/2 [B, H, L, m] of x [B, H, L, d] (x' = x d^-1/4).
at::Tensor softmax_logits(const at::Tensor& x, const at::Tensor& W);

// FAVOR+ softmax features of q, k [B, H, L, d] with W [m, d]; key_mask [B, L] bool (true = real token) or
// undefined. causal: chunked running stabilizer (chunk >= 1), see above.
FeatureMaps softmax_features(const at::Tensor& q, const at::Tensor& k, const at::Tensor& W, const at::Tensor& key_mask,
                             bool causal = false, int64_t chunk = 128);

// ReLU features. W undefined: the deterministic variant ReLU(x) + eps.
FeatureMaps relu_features(const at::Tensor& q, const at::Tensor& k, const at::Tensor& W, double eps,
                          const at::Tensor& key_mask);

// [B, L] key mask (true = real token) -> [B, 1, L, 1], true at padding: the rows to mask in [B, H, L, .].
at::Tensor padding_rows(const at::Tensor& key_mask);

// Zeroes the rows of f [B, H, L, m] at padding positions of key_mask [B, L] (selects, so inf/NaN in padding
// rows do not survive).
at::Tensor mask_rows(const at::Tensor& f, const at::Tensor& key_mask);

}  // namespace performer
