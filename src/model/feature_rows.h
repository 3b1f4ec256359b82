// FAVOR feature rows made in one pass per row (model/kernels.h has the formulas), for the lean core's grouped
// path (model/lean_favor.cpp): softmax (the logits W x' - |x'|^2/2, their shifts and exp, fused) and ReLU
// (W x / sqrt(m), ReLU, + eps).
// Plain float32 loops on raw pointers, no LibTorch: the same source is compiled for AVX-512, AVX2 and the
// baseline instruction set (feature_rows_*.cpp) and the best one the CPU has runs (checked once).
//
// Why by hand: at small heads (the ESM-2 8M shape: d 16, m 64, L <= 512) LibTorch's separate passes (product,
// -|x'|^2/2, mask, max, subtract, exp: six reads or writes of every [L, m] value per side) took most of the
// attention core's time, profiled at 1.0 s of a 2.1 s bf16 training step on a 2-core AMX Xeon.
//
// Shapes: N rows of (sequence, head) pairs, L positions, d head dimension, m features (a multiple of 16).
// x [N, L, d] contiguous; Wt [d, m] = (W d^-1/4)^T; half_sq = d^-1/2 / 2, so the logit of feature r is
// a_r = x . Wt[:, r] - half_sq |x|^2; real [N / heads, L] (true = real key) or null.
#pragma once
#include <cstdint>

namespace performer {

struct FeatureRowsArgs {
  const float* x = nullptr;
  const float* Wt = nullptr;
  const bool* real = nullptr;  // keys only; row n uses real + (n / heads) * L
  int64_t heads = 1, L = 0, d = 0, m = 0;
  float half_sq = 0;
};

// Keys of rows [n0, n1): kf[n - n0] = exp(a - s[n]) [L, m], 0 at padding. find_shift: s[n] [m] = max over
// the real keys of a (0 for a feature of a row without any real key), written; otherwise s is read.
void softmax_key_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, bool find_shift, float* s, float* kf);

// Queries of rows [n0, n1): z = x Wt + s[n] (the key shift moved in; the query's own -half_sq |x|^2 cancels,
// model/lean_favor.h), t[n, i] = max_r z_ir, qf[n - n0, i] = exp(z_i - t_i) [L, m].
void softmax_query_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, const float* s, float* t, float* qf);

// ReLU features of rows [n0, n1) (the generalized kernel, model/kernels.h), Wt = (W / sqrt(m))^T: the
// pre-activation z = x Wt and phi[n - n0] = ReLU(z) + eps [L, m]; rows at padding (a.real, keys only) get
// phi = 0 and z = 0. z is written only where z_out is not null (backward needs its sign).
void relu_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, float eps, float* phi, float* z_out);

// The same over rows [n0, n1) split among LibTorch's intra-op threads (model/feature_rows_parallel.cpp).
void parallel_softmax_key_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, bool find_shift, float* s, float* kf);
void parallel_softmax_query_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, const float* s, float* t, float* qf);
void parallel_relu_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, float eps, float* phi, float* z_out);

// exp of n values (the kernels' own approximation), for its test against std::exp.
void feature_rows_exp(const float* x, float* y, int64_t n);

// Which build of the loops runs here: "avx512", "avx2" or "baseline" (the best the CPU has, unless chosen).
const char* feature_rows_isa();
// Chooses the build by that name, for tests of each one; false (and no change) where this CPU or build lacks it.
bool use_feature_rows_isa(const char* name);

}  // namespace performer
