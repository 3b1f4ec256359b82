#include "model/local_conv.h"

#include <torch/torch.h>

#include "model/local_conv_rows.h"

namespace performer {

namespace {

at::Tensor masked(const at::Tensor& n, const at::Tensor& key_mask) {
  return key_mask.defined() ? n.masked_fill(key_mask.logical_not().unsqueeze(-1), 0.0) : n;
}

LocalConvShape shape_of(const at::Tensor& x, const at::Tensor& weight) {
  return {x.size(0), x.size(1), x.size(2), weight.size(1)};
}

struct LocalConv : public torch::autograd::Function<LocalConv> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias) {
    const at::Tensor xc = x.contiguous(), wc = weight.contiguous(), bc = bias.contiguous();
    ctx->save_for_backward({xc, wc});
    at::Tensor y = at::empty_like(xc);
    local_conv_forward(shape_of(xc, wc), xc.data_ptr<float>(), wc.data_ptr<float>(), bc.data_ptr<float>(),
                       y.data_ptr<float>());
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w = saved[1];
    const at::Tensor g = grad[0].contiguous();
    at::Tensor gx = at::empty_like(x), gw = at::empty_like(w), gb = at::empty({w.size(0)}, w.options());
    local_conv_backward(shape_of(x, w), x.data_ptr<float>(), w.data_ptr<float>(), g.data_ptr<float>(),
                        gx.data_ptr<float>(), gw.data_ptr<float>(), gb.data_ptr<float>());
    return {gx, gw, gb};
  }
};

}  // namespace

at::Tensor local_conv_reference(const at::Tensor& n, const at::Tensor& key_mask, const at::Tensor& weight,
                                const at::Tensor& bias) {
  const at::Tensor x = masked(n, key_mask);
  const int64_t k = weight.size(1), r = (k - 1) / 2, L = x.size(1);
  const at::Tensor padded = at::constant_pad_nd(x, {0, 0, r, r});  // [B, L + 2r, D]
  const at::Tensor w = weight.to(x.scalar_type());
  at::Tensor y = bias.to(x.scalar_type()) + padded.narrow(1, 0, L) * w.select(1, 0);
  for (int64_t o = 1; o < k; ++o) y = y + padded.narrow(1, o, L) * w.select(1, o);
  return y;
}

at::Tensor local_conv(const at::Tensor& n, const at::Tensor& key_mask, const at::Tensor& weight,
                      const at::Tensor& bias) {
  const bool loops = n.is_cpu() && (n.scalar_type() == at::kFloat || n.scalar_type() == at::kBFloat16) &&
                     weight.scalar_type() == at::kFloat && bias.scalar_type() == at::kFloat;
  if (!loops) return local_conv_reference(n, key_mask, weight, bias);
  // bf16 (CPU autocast) is widened: the sums run in float32 and the branch's output is float32.
  return LocalConv::apply(masked(n, key_mask).to(at::kFloat), weight, bias);
}

}  // namespace performer
