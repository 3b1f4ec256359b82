// The depthwise convolution over positions of model.local_kernel (model/local_conv.h has the formula), as
// plain loops on raw float32 pointers split among LibTorch's intra-op threads.
//
// Why by hand: at::conv1d needs [B, D, L] (two transposed copies per call) and the tensor formula of shifted
// sums makes 2k passes over [B, L, D]; both cost 0.057-0.068 s of a 0.256 s quickstart training step (k 7,
// LibTorch 2.11, float32, 2 threads: +22-27%). These loops read x and write y once per pass.
//
// Shapes: x, g, y, gx [B, L, D] contiguous; w [D, k] (k odd, r = (k - 1) / 2), b [D]; gw [D, k], gb [D].
#pragma once
#include <cstdint>

namespace performer {

struct LocalConvShape {
  int64_t B = 0, L = 0, D = 0, k = 0;
};

// y[b, i, c] = bias[c] + sum_o w[c, o] x[b, i + o - r, c]   (x outside 0..L-1 reads as 0)
void local_conv_forward(const LocalConvShape& s, const float* x, const float* w, const float* bias, float* y);
// gx[b, j, c] = sum_o w[c, o] g[b, j - o + r, c];  gw[c, o] = sum_{b, i} g[b, i, c] x[b, i + o - r, c];
// gb[c] = sum_{b, i} g[b, i, c]   (sums in float64 across blocks of positions, float32 within a block)
void local_conv_backward(const LocalConvShape& s, const float* x, const float* w, const float* g, float* gx,
                         float* gw, float* gb);

}  // namespace performer
