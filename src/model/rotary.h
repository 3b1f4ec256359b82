// Rotary position embedding: rotates each pair (x_i, x_{i+d/2}) of a head's query/key by angle
// p * theta_i, theta_i = 10000^(-2i/d), so q.k depends on the relative position. x [B, H, L, d], d even.
#pragma once
#include <ATen/core/Tensor.h>

namespace performer {

at::Tensor apply_rotary(const at::Tensor& x);

}  // namespace performer
