// model/rotary_rows.h. Compiled with -fopenmp (CMakeLists.txt), as at::parallel_for's OpenMP region is
// compiled into its caller.
#include "model/rotary_rows.h"

#include <ATen/Parallel.h>

#include <cstring>

namespace performer {

namespace {

float from_bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest even; NaN stays a (quiet) NaN. Branch-free so that the row loop vectorizes.
uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  return static_cast<uint16_t>(nan ? 0x7FC0u : rounded);
}

struct Float {
  using T = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};
struct Bf16 {
  using T = uint16_t;
  static float load(uint16_t v) { return from_bf16(v); }
  static uint16_t store(float v) { return to_bf16(v); }
};

// One (sequence, head) pair's L rows: out_i = x_i c_i - sign x_{i+h} s_i, out_{i+h} = sign x_i s_i + x_{i+h} c_i.
template <class E>
void pair_rows(const RotaryRowsArgs& a, const typename E::T* x, typename E::T* out) {
  const int64_t h = a.d / 2;
  for (int64_t l = 0; l < a.L; ++l) {
    const typename E::T* xr = x + l * a.sL;
    typename E::T* o = out + l * a.d;
    const float* c = a.cos_t + l * h;
    const float* s = a.sin_t + l * h;
    for (int64_t i = 0; i < h; ++i) {
      const float x1 = E::load(xr[i]), x2 = E::load(xr[i + h]), si = a.sign * s[i];
      o[i] = E::store(x1 * c[i] - x2 * si);
      o[i + h] = E::store(x1 * si + x2 * c[i]);
    }
  }
}

template <class E>
void rows(const RotaryRowsArgs& a, const typename E::T* x, typename E::T* out) {
  // One task is one (sequence, head) pair: L d values, at least a few KB.
  at::parallel_for(0, a.B * a.H, 1, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t b = n / a.H, hd = n % a.H;
      pair_rows<E>(a, x + b * a.sB + hd * a.sH, out + n * a.L * a.d);
    }
  });
}

}  // namespace

void rotary_rows(const RotaryRowsArgs& a, const float* x, float* out) { rows<Float>(a, x, out); }
void rotary_rows_bf16(const RotaryRowsArgs& a, const uint16_t* x, uint16_t* out) { rows<Bf16>(a, x, out); }

}  // namespace performer
