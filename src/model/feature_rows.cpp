// Runs the best build of model/feature_rows_impl.h this CPU supports (x86: AVX-512, then AVX2 with FMA,
// checked once; elsewhere the baseline build).
#include "model/feature_rows.h"

#include <string>

namespace performer {

#define FEATURE_ROWS_DECLARE(ns)                                                                              \
  namespace ns {                                                                                              \
  void softmax_key_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, bool find_shift, float* s, float* kf); \
  void softmax_query_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, const float* s, float* t, float* qf); \
  void relu_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, float eps, float* phi, float* z_out);     \
  void feature_rows_exp(const float* x, float* y, int64_t n);                                               \
  }
FEATURE_ROWS_DECLARE(isa_base)
#if defined(PERFORMER_FEATURE_ROWS_X86)
FEATURE_ROWS_DECLARE(isa_avx2)
FEATURE_ROWS_DECLARE(isa_avx512)
#endif

namespace {

enum class Isa { kBase, kAvx2, kAvx512 };

Isa detect() {
#if defined(PERFORMER_FEATURE_ROWS_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kBase;
}

// The build in use: the best one, unless a test chose another (use_feature_rows_isa).
Isa& chosen() {
  static Isa found = detect();
  return found;
}

}  // namespace

#if defined(PERFORMER_FEATURE_ROWS_X86)
#define FEATURE_ROWS_CALL(fn, ...)                                    \
  switch (chosen()) {                                                    \
    case Isa::kAvx512: return isa_avx512::fn(__VA_ARGS__);            \
    case Isa::kAvx2: return isa_avx2::fn(__VA_ARGS__);                \
    default: return isa_base::fn(__VA_ARGS__);                        \
  }
#else
#define FEATURE_ROWS_CALL(fn, ...) return isa_base::fn(__VA_ARGS__);
#endif

void softmax_key_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, bool find_shift, float* s, float* kf) {
  FEATURE_ROWS_CALL(softmax_key_rows, a, n0, n1, find_shift, s, kf)
}

void softmax_query_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, const float* s, float* t, float* qf) {
  FEATURE_ROWS_CALL(softmax_query_rows, a, n0, n1, s, t, qf)
}

void relu_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, float eps, float* phi, float* z_out) {
  FEATURE_ROWS_CALL(relu_rows, a, n0, n1, eps, phi, z_out)
}

void feature_rows_exp(const float* x, float* y, int64_t n) { FEATURE_ROWS_CALL(feature_rows_exp, x, y, n) }

const char* feature_rows_isa() {
  switch (chosen()) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "baseline";
  }
}

bool use_feature_rows_isa(const char* name) {
  const std::string want = name;
  const Isa best = detect();
  Isa pick;
  if (want == "baseline") pick = Isa::kBase;
  else if (want == "avx2") pick = Isa::kAvx2;
  else if (want == "avx512") pick = Isa::kAvx512;
  else return false;
  if (static_cast<int>(pick) > static_cast<int>(best)) return false;
  chosen() = pick;
  return true;
}

}  // namespace performer
