// model/local_conv_rows.h. Compiled with -fopenmp (CMakeLists.txt), as at::parallel_for's OpenMP region is
// compiled into its caller.
#include "model/local_conv_rows.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace performer {

namespace {
// Positions per block of work: a block's rows of x and y (128 x D floats each) stay in L2.
constexpr int64_t kBlock = 128;
}  // namespace

void local_conv_forward(const LocalConvShape& s, const float* x, const float* w, const float* bias, float* y) {
  const int64_t blocks_per_row = (s.L + kBlock - 1) / kBlock, r = (s.k - 1) / 2, D = s.D;
  at::parallel_for(0, s.B * blocks_per_row, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / blocks_per_row, i0 = (t % blocks_per_row) * kBlock, i1 = std::min(s.L, i0 + kBlock);
      for (int64_t i = i0; i < i1; ++i) {
        float* out = y + (b * s.L + i) * D;
        std::copy(bias, bias + D, out);
        for (int64_t o = 0; o < s.k; ++o) {
          const int64_t j = i + o - r;
          if (j < 0 || j >= s.L) continue;
          const float* in = x + (b * s.L + j) * D;
          for (int64_t c = 0; c < D; ++c) out[c] += w[c * s.k + o] * in[c];
        }
      }
    }
  });
}

void local_conv_backward(const LocalConvShape& s, const float* x, const float* w, const float* g, float* gx,
                         float* gw, float* gb) {
  const int64_t blocks_per_row = (s.L + kBlock - 1) / kBlock, blocks = s.B * blocks_per_row;
  const int64_t r = (s.k - 1) / 2, D = s.D, k = s.k;
  // w transposed to [k, D] so that the inner loops run over contiguous channels.
  std::vector<float> wt(static_cast<size_t>(k * D));
  for (int64_t c = 0; c < D; ++c)
    for (int64_t o = 0; o < k; ++o) wt[o * D + c] = w[c * k + o];
  // Per block: [k, D] weight gradient and [D] bias gradient, summed over blocks afterwards.
  std::vector<float> partial(static_cast<size_t>(blocks * (k + 1) * D), 0.0f);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / blocks_per_row, i0 = (t % blocks_per_row) * kBlock, i1 = std::min(s.L, i0 + kBlock);
      float* pw = partial.data() + t * (k + 1) * D;
      float* pb = pw + k * D;
      for (int64_t i = i0; i < i1; ++i) {
        const float* gi = g + (b * s.L + i) * D;
        float* out = gx + (b * s.L + i) * D;
        std::fill(out, out + D, 0.0f);
        for (int64_t c = 0; c < D; ++c) pb[c] += gi[c];
        for (int64_t o = 0; o < k; ++o) {
          // gx at i gathers g at i - o + r; the weight gradient pairs g at i with x at i + o - r.
          const int64_t jg = i - o + r, jx = i + o - r;
          const float* wo = wt.data() + o * D;
          if (jg >= 0 && jg < s.L) {
            const float* gj = g + (b * s.L + jg) * D;
            for (int64_t c = 0; c < D; ++c) out[c] += wo[c] * gj[c];
          }
          if (jx >= 0 && jx < s.L) {
            const float* xj = x + (b * s.L + jx) * D;
            float* pwo = pw + o * D;
            for (int64_t c = 0; c < D; ++c) pwo[c] += gi[c] * xj[c];
          }
        }
      }
    }
  });
  std::vector<double> sum(static_cast<size_t>((k + 1) * D), 0.0);
  for (int64_t t = 0; t < blocks; ++t) {
    const float* p = partial.data() + t * (k + 1) * D;
    for (int64_t e = 0; e < (k + 1) * D; ++e) sum[e] += p[e];
  }
  for (int64_t c = 0; c < D; ++c) {
    for (int64_t o = 0; o < k; ++o) gw[c * k + o] = static_cast<float>(sum[o * D + c]);
    gb[c] = static_cast<float>(sum[k * D + c]);
  }
}

}  // namespace performer
