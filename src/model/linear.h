// y = x W^T + b of a torch::nn::Linear, through at::linear, which multiplies and adds the bias in one
// product (addmm) for inputs of any rank.
//
// Why not the module's own forward: the C++ frontend's Linear (torch::nn::functional::linear) runs
// a 3-D input as matmul and then an in-place `+= bias`. Under bf16 autocast that in-place add takes a
// float32 bias into a bf16 product, casting on every call; profiled (`bench train --profile`, the ESM-2 8M
// shape, 2 cores, LibTorch 2.11) the bias adds and their casts were 12% of a bf16 training step.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

namespace performer {

inline at::Tensor linear(const torch::nn::Linear& layer, const at::Tensor& x) {
  return at::linear(x, layer->weight, layer->bias);
}

}  // namespace performer
