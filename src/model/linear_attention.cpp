#include "model/linear_attention.h"

#include <torch/torch.h>

#include <limits>

#include "util/error.h"

namespace performer {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

double denominator_floor(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? std::numeric_limits<double>::min()
                                        : static_cast<double>(std::numeric_limits<float>::min());
}

// v -> [v, 1]: one pass then yields both the numerator (first d columns) and the normalizer D (last).
at::Tensor with_ones(const at::Tensor& v) {
  auto sizes = v.sizes().vec();
  sizes.back() = 1;
  return at::cat({v, at::ones(sizes, v.options())}, -1);
}

at::Tensor normalize(const at::Tensor& num_and_den) {
  const int64_t d = num_and_den.size(-1) - 1;
  at::Tensor num = num_and_den.narrow(-1, 0, d);
  at::Tensor den = num_and_den.narrow(-1, d, 1).clamp_min(denominator_floor(num_and_den));
  return num / den;
}

// Lower-triangular (j <= i) mask for a c x c chunk.
at::Tensor tril_mask(int64_t c, const at::TensorOptions& opts) {
  return at::ones({c, c}, opts.dtype(at::kBool)).tril();
}

struct CausalDotProduct : public torch::autograd::Function<CausalDotProduct> {
  // N_c = (q_c k_c^T ⊙ tril) v_c + q_c S_{<a},    S_{<a} = sum_{j<a} k_j v_j^T   [m, e]
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            int64_t chunk) {
    ctx->save_for_backward({q, k, v});
    ctx->saved_data["chunk"] = chunk;
    const int64_t L = q.size(2);
    at::Tensor out = at::empty(v.sizes(), v.options());
    at::Tensor S = at::zeros({q.size(0), q.size(1), q.size(3), v.size(3)}, v.options());
    for (int64_t a = 0; a < L; a += chunk) {
      const int64_t c = std::min(chunk, L - a);
      at::Tensor qc = q.narrow(2, a, c), kc = k.narrow(2, a, c), vc = v.narrow(2, a, c);
      at::Tensor scores = at::matmul(qc, kc.transpose(-1, -2)).masked_fill_(~tril_mask(c, q.options()), 0);
      out.narrow(2, a, c).copy_(at::matmul(scores, vc) + at::matmul(qc, S));
      S.add_(at::matmul(kc.transpose(-1, -2), vc));
    }
    return out;
  }

  // With G = dLoss/dN and R_{>=b} = sum_{i>=b} q_i G_i^T [m, e] (a reversed prefix sum):
  //   dq_c = (G_c v_c^T ⊙ tril) k_c + G_c S_{<a}^T
  //   dk_c = (G_c v_c^T ⊙ tril)^T q_c + v_c R_{>=b}^T
  //   dv_c = (q_c k_c^T ⊙ tril)^T G_c + k_c R_{>=b}
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::Tensor G = grads[0].contiguous();
    const int64_t L = q.size(2);
    at::Tensor dq = at::empty(q.sizes(), q.options());
    at::Tensor dk = at::empty(k.sizes(), k.options());
    at::Tensor dv = at::empty(v.sizes(), v.options());
    // Forward sweep: prefix S for dq.
    at::Tensor S = at::zeros({q.size(0), q.size(1), q.size(3), v.size(3)}, v.options());
    for (int64_t a = 0; a < L; a += chunk) {
      const int64_t c = std::min(chunk, L - a);
      at::Tensor kc = k.narrow(2, a, c), vc = v.narrow(2, a, c), gc = G.narrow(2, a, c);
      at::Tensor gv = at::matmul(gc, vc.transpose(-1, -2)).masked_fill_(~tril_mask(c, q.options()), 0);
      dq.narrow(2, a, c).copy_(at::matmul(gv, kc) + at::matmul(gc, S.transpose(-1, -2)));
      S.add_(at::matmul(kc.transpose(-1, -2), vc));
    }
    // Reverse sweep: suffix R for dk and dv.
    at::Tensor R = at::zeros_like(S);
    const int64_t last = ((L - 1) / chunk) * chunk;
    for (int64_t a = last; a >= 0; a -= chunk) {
      const int64_t c = std::min(chunk, L - a);
      at::Tensor qc = q.narrow(2, a, c), kc = k.narrow(2, a, c), vc = v.narrow(2, a, c), gc = G.narrow(2, a, c);
      const at::Tensor mask = ~tril_mask(c, q.options());
      at::Tensor gv = at::matmul(gc, vc.transpose(-1, -2)).masked_fill_(mask, 0);
      at::Tensor qk = at::matmul(qc, kc.transpose(-1, -2)).masked_fill_(mask, 0);
      dk.narrow(2, a, c).copy_(at::matmul(gv.transpose(-1, -2), qc) + at::matmul(vc, R.transpose(-1, -2)));
      dv.narrow(2, a, c).copy_(at::matmul(qk.transpose(-1, -2), gc) + at::matmul(kc, R));
      R.add_(at::matmul(qc.transpose(-1, -2), gc));
    }
    return {dq, dk, dv, at::Tensor()};
  }
};

void check_shapes(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v) {
  if (qf.dim() != 4 || kf.sizes() != qf.sizes() || v.dim() != 4 || v.size(0) != qf.size(0) ||
      v.size(1) != qf.size(1) || v.size(2) != qf.size(2))
    throw Error("linear attention: expected qf, kf [B,H,L,m] and v [B,H,L,d] with matching B, H, L");
}

}  // namespace

at::Tensor linear_attention(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v) {
  check_shapes(qf, kf, v);
  at::Tensor kv = at::matmul(kf.transpose(-1, -2), with_ones(v.to(kf.scalar_type())));  // [B,H,m,d+1]
  return normalize(at::matmul(qf, kv)).to(v.scalar_type());
}

at::Tensor causal_dot_product(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t chunk) {
  if (chunk < 1) throw Error("causal attention: chunk must be positive");
  return CausalDotProduct::apply(q.contiguous(), k.contiguous(), v.contiguous(), chunk);
}

at::Tensor causal_linear_attention(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v, int64_t chunk) {
  check_shapes(qf, kf, v);
  return normalize(causal_dot_product(qf, kf, with_ones(v.to(kf.scalar_type())), chunk)).to(v.scalar_type());
}

at::Tensor feature_attention_matrix(const at::Tensor& qf, const at::Tensor& kf, bool causal) {
  at::Tensor A = at::matmul(qf, kf.transpose(-1, -2));  // [B,H,L,L]
  if (causal) A = A.masked_fill(~tril_mask(A.size(-1), A.options()), 0);
  return A / A.sum(-1, true).clamp_min(denominator_floor(A));
}

at::Tensor explicit_feature_attention(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v, bool causal) {
  check_shapes(qf, kf, v);
  return at::matmul(feature_attention_matrix(qf, kf, causal), v.to(qf.scalar_type())).to(v.scalar_type());
}

}  // namespace performer
