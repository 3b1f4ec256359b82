// model/feature_rows.h's loops over (sequence, head) pairs, split among LibTorch's intra-op threads. This file
// is compiled with -fopenmp, as is model/rotary_rows.cpp (CMakeLists.txt): at::parallel_for is a header
// template whose OpenMP region is compiled into its caller, and without -fopenmp it runs serially. The OpenMP
// runtime is the one LibTorch loads (libgomp.so.1), so its thread count (--threads) applies here too.
#include <ATen/Parallel.h>

#include "model/feature_rows.h"

namespace performer {

void parallel_softmax_key_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, bool find_shift, float* s, float* kf) {
  at::parallel_for(n0, n1, 1, [&](int64_t b, int64_t e) {
    softmax_key_rows(a, b, e, find_shift, s, kf + (b - n0) * a.L * a.m);
  });
}

void parallel_softmax_query_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, const float* s, float* t, float* qf) {
  at::parallel_for(n0, n1, 1, [&](int64_t b, int64_t e) {
    softmax_query_rows(a, b, e, s, t, qf + (b - n0) * a.L * a.m);
  });
}

void parallel_relu_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, float eps, float* phi, float* z_out) {
  at::parallel_for(n0, n1, 1, [&](int64_t b, int64_t e) {
    relu_rows(a, b, e, eps, phi + (b - n0) * a.L * a.m, z_out ? z_out + (b - n0) * a.L * a.m : nullptr);
  });
}

}  // namespace performer
