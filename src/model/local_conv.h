// model.local_kernel: a depthwise convolution over positions beside each layer's attention (model/encoder.h).
//
//   Local(n)_i = b + sum_{o = 0 .. k-1} w_o * n_{i + o - r},   r = (k - 1) / 2, per channel (w [D, k], b [D])
//
// n [B, L, D] -> [B, L, D]. Positions where key_mask [B, L] is false (padding) are read as 0, like positions
// beyond either end, so a row's padding never reaches its residues. On CPU, float32 and bf16 inputs (the
// latter widened; the output is float32 then) run the loops of model/local_conv_rows.h as one autograd node
// (first derivatives only); double, CUDA and other devices run the same sum as tensor operations.
#pragma once
#include <ATen/core/Tensor.h>

namespace performer {

at::Tensor local_conv(const at::Tensor& n, const at::Tensor& key_mask, const at::Tensor& weight,
                      const at::Tensor& bias);

// The tensor-operation form (any dtype, device; twice differentiable): the reference for the loops' tests.
at::Tensor local_conv_reference(const at::Tensor& n, const at::Tensor& key_mask, const at::Tensor& weight,
                                const at::Tensor& bias);

}  // namespace performer
