// The body of model/feature_rows.h, included by feature_rows_{avx512,avx2,base}.cpp inside a namespace of
// their own, each compiled for its instruction set, with vectors (GCC/Clang vector extensions) of its register
// width, FEATURE_ROWS_VECTOR_BYTES: 64 (AVX-512, 16 floats), 32 (AVX2) or 16 (SSE). Wider generic vectors
// than the registers were compiled lane by lane (GCC 12).
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "model/feature_rows.h"

namespace {

typedef float vf __attribute__((vector_size(FEATURE_ROWS_VECTOR_BYTES)));
typedef int32_t vi __attribute__((vector_size(FEATURE_ROWS_VECTOR_BYTES)));
constexpr int64_t kLanes = FEATURE_ROWS_VECTOR_BYTES / 4;

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
inline vf splat(float x) { return vf{} + x; }
// Lane-wise select by a comparison's mask (all ones or zeros), with bit operations: the vector ?: of GCC 12
// was compiled lane by lane.
inline vf select(vi mask, vf a, vf b) {
  return __builtin_bit_cast(vf, (mask & __builtin_bit_cast(vi, a)) | (~mask & __builtin_bit_cast(vi, b)));
}
inline vf vmax(vf a, vf b) { return select(a > b, a, b); }
// The largest lane, by halving (a dependency chain of log2(lanes) steps instead of lanes).
inline float hmax(vf a) {
  float r[kLanes];
  std::memcpy(r, &a, sizeof a);
  for (int64_t half = kLanes / 2; half >= 1; half /= 2)
    for (int64_t i = 0; i < half; ++i) r[i] = std::max(r[i], r[i + half]);
  return r[0];
}
// |x|^2 of a row with four partial sums (one chain of d dependent adds was a quarter of a key row's time).
inline float squared_norm(const float* x, int64_t d) {
  float part[4] = {0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 4 <= d; k += 4)
    for (int i = 0; i < 4; ++i) part[i] += x[k + i] * x[k + i];
  for (; k < d; ++k) part[0] += x[k] * x[k];
  return (part[0] + part[1]) + (part[2] + part[3]);
}

// exp(x) = 2^n exp(r), n = round(x log2 e), r = x - n ln 2 (in two parts, exact first), exp(r) by the
// degree-6 polynomial of Cephes' expf (~1 ulp on |r| <= ln2/2). Below -87.33 (where exp leaves the normal
// floats) the result is 0, -inf included; above 88 it is clamped (the features never get there: their
// arguments are <= 0). NaN stays NaN.
inline vf vexp(vf x) {
  const vi tiny = x < -87.33f;
  const vi nan = x != x;
  vf y = select(tiny, splat(-87.33f), x);
  y = select(y > 88.0f, splat(88.0f), y);
  const vf n = (y * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 2^23 trick)
  vf r = y - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  vf p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const vi e = (__builtin_convertvector(n, vi) + 127) << 23;  // 2^n, n in [-126, 127]: a normal float
  const vf out = select(tiny, splat(0.0f), p * __builtin_bit_cast(vf, e));
  return select(nan, x, out);
}

// acc[v] = init[v] + sum_k x[k] Wt[k, v*kLanes ..]: the m logits of one row (before the |x|^2 term). Four
// vectors at a time, each in its own register, so four independent chains of d multiply-adds run
// together. Measured on the key rows of the ESM-2 8M shape (d 16, m 64), one thread: one vector's chain at
// a time took 1.07x as long with AVX-512, 1.28x with AVX2 and 1.46x on the baseline build.
inline void project_row(const float* x, const float* Wt, int64_t d, int64_t m, const vf* init, vf* acc) {
  const int64_t V = m / kLanes;
  int64_t v = 0;
  for (; v + 4 <= V; v += 4) {
    vf s0 = init[v], s1 = init[v + 1], s2 = init[v + 2], s3 = init[v + 3];
    const float* w = Wt + v * kLanes;
    for (int64_t k = 0; k < d; ++k) {
      const float xk = x[k];
      const float* wk = w + k * m;
      s0 += xk * load(wk);
      s1 += xk * load(wk + kLanes);
      s2 += xk * load(wk + 2 * kLanes);
      s3 += xk * load(wk + 3 * kLanes);
    }
    acc[v] = s0;
    acc[v + 1] = s1;
    acc[v + 2] = s2;
    acc[v + 3] = s3;
  }
  for (; v < V; ++v) {
    vf sum = init[v];
    const float* w = Wt + v * kLanes;
    for (int64_t k = 0; k < d; ++k) sum += x[k] * load(w + k * m);
    acc[v] = sum;
  }
}

}  // namespace

namespace performer {
namespace FEATURE_ROWS_ISA {

void softmax_key_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, bool find_shift, float* s, float* kf) {
  const int64_t L = a.L, d = a.d, m = a.m, V = m / kLanes;
  std::vector<vf> acc(static_cast<size_t>(V)), shift(static_cast<size_t>(V));
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = a.x + n * L * d;
    const bool* real = a.real ? a.real + (n / a.heads) * L : nullptr;
    float* out = kf + (n - n0) * L * m;
    float* sn = s + n * m;
    if (find_shift) {  // pass 1: logits into out, their maximum over real keys
      for (int64_t v = 0; v < V; ++v) shift[v] = splat(-inf);
      for (int64_t j = 0; j < L; ++j) {
        if (real && !real[j]) continue;
        const float* xj = x + j * d;
        const float sq = squared_norm(xj, d);
        for (int64_t v = 0; v < V; ++v) acc[v] = splat(-a.half_sq * sq);
        project_row(xj, a.Wt, d, m, acc.data(), acc.data());
        for (int64_t v = 0; v < V; ++v) {
          store(out + j * m + v * kLanes, acc[v]);
          shift[v] = vmax(shift[v], acc[v]);
        }
      }
      for (int64_t v = 0; v < V; ++v) {
        shift[v] = select(shift[v] == -inf, splat(0.0f), shift[v]);  // no real key: KV stays 0
        store(sn + v * kLanes, shift[v]);
      }
      for (int64_t j = 0; j < L; ++j) {  // pass 2: exp(a - s), in place
        float* row = out + j * m;
        if (real && !real[j]) {
          std::memset(row, 0, static_cast<size_t>(m) * sizeof(float));
          continue;
        }
        for (int64_t v = 0; v < V; ++v) store(row + v * kLanes, vexp(load(row + v * kLanes) - shift[v]));
      }
    } else {  // one pass with the given shift
      for (int64_t v = 0; v < V; ++v) shift[v] = load(sn + v * kLanes);
      for (int64_t j = 0; j < L; ++j) {
        float* row = out + j * m;
        if (real && !real[j]) {
          std::memset(row, 0, static_cast<size_t>(m) * sizeof(float));
          continue;
        }
        const float* xj = x + j * d;
        const float sq = squared_norm(xj, d);
        for (int64_t v = 0; v < V; ++v) acc[v] = splat(-a.half_sq * sq) - shift[v];
        project_row(xj, a.Wt, d, m, acc.data(), acc.data());
        for (int64_t v = 0; v < V; ++v) store(row + v * kLanes, vexp(acc[v]));
      }
    }
  }
}

void softmax_query_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, const float* s, float* t, float* qf) {
  const int64_t L = a.L, d = a.d, m = a.m, V = m / kLanes;
  std::vector<vf> acc(static_cast<size_t>(V)), shift(static_cast<size_t>(V));
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = a.x + n * L * d;
    for (int64_t v = 0; v < V; ++v) shift[v] = load(s + n * m + v * kLanes);
    float* out = qf + (n - n0) * L * m;
    for (int64_t i = 0; i < L; ++i) {
      project_row(x + i * d, a.Wt, d, m, shift.data(), acc.data());
      vf best = acc[0];
      for (int64_t v = 1; v < V; ++v) best = vmax(best, acc[v]);
      const float ti = hmax(best);
      t[n * L + i] = ti;
      for (int64_t v = 0; v < V; ++v) store(out + i * m + v * kLanes, vexp(acc[v] - ti));
    }
  }
}

void relu_rows(const FeatureRowsArgs& a, int64_t n0, int64_t n1, float eps, float* phi, float* z_out) {
  const int64_t L = a.L, d = a.d, m = a.m, V = m / kLanes;
  std::vector<vf> acc(static_cast<size_t>(V)), zero(static_cast<size_t>(V), splat(0.0f));
  for (int64_t n = n0; n < n1; ++n) {
    const float* x = a.x + n * L * d;
    const bool* real = a.real ? a.real + (n / a.heads) * L : nullptr;
    float* out = phi + (n - n0) * L * m;
    float* zo = z_out ? z_out + (n - n0) * L * m : nullptr;
    for (int64_t j = 0; j < L; ++j) {
      if (real && !real[j]) {
        std::memset(out + j * m, 0, static_cast<size_t>(m) * sizeof(float));
        if (zo) std::memset(zo + j * m, 0, static_cast<size_t>(m) * sizeof(float));
        continue;
      }
      project_row(x + j * d, a.Wt, d, m, zero.data(), acc.data());
      for (int64_t v = 0; v < V; ++v) {
        if (zo) store(zo + j * m + v * kLanes, acc[v]);
        store(out + j * m + v * kLanes, select(acc[v] > 0.0f, acc[v], splat(0.0f)) + eps);
      }
    }
  }
}

void feature_rows_exp(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store(y + i, vexp(load(x + i)));
  if (i < n) {
    float buf[kLanes] = {};
    std::memcpy(buf, x + i, static_cast<size_t>(n - i) * sizeof(float));
    const vf r = vexp(load(buf));
    std::memcpy(y + i, &r, static_cast<size_t>(n - i) * sizeof(float));
  }
}

}  // namespace FEATURE_ROWS_ISA
}  // namespace performer
