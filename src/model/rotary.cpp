#include "model/rotary.h"

#include <c10/core/InferenceMode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include <map>
#include <mutex>
#include <tuple>

#include "model/rotary_rows.h"
#include "util/error.h"

namespace performer {

namespace {

// cos and sin of p * theta_i, float32 [L, d/2], kept per (d, device) for the longest L asked so far: a
// position's angle does not depend on L, so a shorter L is the first rows. Computing them per call took
// about half of the tensor formula's time (ESM-2 8M shape, bf16, 2 cores).
std::pair<at::Tensor, at::Tensor> rotary_tables(int64_t L, int64_t d, const at::Device& device) {
  static std::mutex mutex;
  // Never freed: CUDA tables must not be released by static destruction after the CUDA runtime has gone.
  static auto* tables = new std::map<std::tuple<int64_t, int, int>, std::pair<at::Tensor, at::Tensor>>();
  std::lock_guard<std::mutex> lock(mutex);
  auto& t = (*tables)[{d, static_cast<int>(device.type()), device.index()}];
  if (!t.first.defined() || t.first.size(0) < L) {
    // Plain tensors whatever the caller's mode: made under inference mode they could not be saved for a
    // later backward; autocast off, the angles stay float32.
    c10::InferenceMode not_inference(false);
    torch::NoGradGuard no_grad;
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
    const at::Tensor inv = at::pow(10000.0, -at::arange(0, d, 2, opts) / static_cast<double>(d));  // [d/2]
    const at::Tensor ang = at::outer(at::arange(L, opts), inv);                                  // [L, d/2]
    t = {ang.cos(), ang.sin()};
  }
  return {t.first.narrow(0, 0, L), t.second.narrow(0, 0, L)};
}

// x [B, H, L, d] (unit last stride) rotated by sign * angle into a new contiguous tensor (model/rotary_rows.h).
at::Tensor rotate_rows(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, float sign) {
  const at::Tensor xs = x.stride(3) == 1 ? x : x.contiguous();
  at::Tensor out = at::empty(xs.sizes(), xs.options().memory_format(at::MemoryFormat::Contiguous));
  RotaryRowsArgs a;
  a.B = xs.size(0), a.H = xs.size(1), a.L = xs.size(2), a.d = xs.size(3);
  a.sB = xs.stride(0), a.sH = xs.stride(1), a.sL = xs.stride(2);
  a.cos_t = cos.data_ptr<float>();
  a.sin_t = sin.data_ptr<float>();
  a.sign = sign;
  if (xs.scalar_type() == at::kFloat) {
    rotary_rows(a, xs.data_ptr<float>(), out.data_ptr<float>());
  } else {
    static_assert(sizeof(at::BFloat16) == sizeof(uint16_t));
    rotary_rows_bf16(a, reinterpret_cast<const uint16_t*>(xs.data_ptr<at::BFloat16>()),
                     reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()));
  }
  return out;
}

// The rotation by sign * angle as one autograd node. Its gradient is the rotation by -sign * angle (a
// rotation's transpose), itself through this node, so a double backward (create_graph) differentiates it too.
struct Rotary : public torch::autograd::Function<Rotary> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& cos,
                            const at::Tensor& sin, double sign) {
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["sign"] = sign;
    return rotate_rows(x, cos, sin, static_cast<float>(sign));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const double sign = ctx->saved_data["sign"].toDouble();
    return {Rotary::apply(grad[0], saved[0], saved[1], -sign), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor apply_rotary(const at::Tensor& x) {
  const int64_t L = x.size(2), d = x.size(3);
  if (d % 2 != 0) throw Error("rotary positions need an even head dimension, got " + std::to_string(d));
  auto [cos, sin] = rotary_tables(L, d, x.device());
  if (x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16))
    return Rotary::apply(x, cos, sin, 1.0);
  // Other devices and types: the tensor formula, tables cast to x's type.
  cos = cos.to(x.scalar_type());
  sin = sin.to(x.scalar_type());
  const at::Tensor x1 = x.narrow(-1, 0, d / 2), x2 = x.narrow(-1, d / 2, d / 2);  // half-split pairing
  return at::cat({x1 * cos - x2 * sin, x1 * sin + x2 * cos}, -1);
}

}  // namespace performer
