#include "model/rotary.h"

#include <torch/torch.h>

#include "util/error.h"

namespace performer {

at::Tensor apply_rotary(const at::Tensor& x) {
  const int64_t L = x.size(2), d = x.size(3);
  if (d % 2 != 0) throw Error("rotary positions need an even head dimension, got " + std::to_string(d));
  auto opts = x.options().dtype(at::kFloat);
  at::Tensor inv = at::pow(10000.0, -at::arange(0, d, 2, opts) / static_cast<double>(d));  // [d/2]
  at::Tensor ang = at::outer(at::arange(L, opts), inv);                                  // [L, d/2]
  at::Tensor cos = ang.cos().to(x.scalar_type()), sin = ang.sin().to(x.scalar_type());
  at::Tensor x1 = x.narrow(-1, 0, d / 2), x2 = x.narrow(-1, d / 2, d / 2);  // half-split pairing
  return at::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
}

}  // namespace performer
