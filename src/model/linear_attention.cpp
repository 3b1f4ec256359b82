#include "model/linear_attention.h"

#include <torch/torch.h>

#include <limits>

#include "util/error.h"

namespace performer {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor normalize(const at::Tensor& num_and_den) {
  const int64_t d = num_and_den.size(-1) - 1;
  at::Tensor num = num_and_den.narrow(-1, 0, d);
  at::Tensor den = num_and_den.narrow(-1, d, 1).clamp_min(denominator_floor(num_and_den.scalar_type()));
  return num / den;
}

// Lower-triangular (j <= i) mask for a c x c chunk.
at::Tensor tril_mask(int64_t c, const at::TensorOptions& opts) {
  return at::ones({c, c}, opts.dtype(at::kBool)).tril();
}

// Moves a running sum X [B,H,m,e] from the shift of chunk `from` to that of chunk `to` (no-op without a
// log-scale, or when `from` is outside [0, C)). A sum of key features exp(l - s) (the prefix S) scales by
// exp(s_from - s_to); a sum of query features exp(a + s - t) (the backward's suffix R) by exp(s_to - s_from).
enum class Side { kKeys, kQueries };
void rescale(at::Tensor& X, const at::Tensor& log_scale, int64_t from, int64_t to, Side side) {
  if (log_scale.numel() == 0 || from < 0 || from >= log_scale.size(2)) return;
  at::Tensor diff = log_scale.select(2, from) - log_scale.select(2, to);
  if (side == Side::kQueries) diff = -diff;
  X.mul_(at::exp(diff).unsqueeze(-1).to(X.scalar_type()));
}

struct CausalDotProduct : public torch::autograd::Function<CausalDotProduct> {
  // N_c = (q_c k_c^T ⊙ tril) v_c + q_c S_{<a},    S_{<a} = sum_{j<a} k_j v_j^T   [m, e]
  // With a log-scale s [B,H,C,m], S is rescaled row-wise by exp(s_{c-1} - s_c) before chunk c.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            int64_t chunk, const at::Tensor& log_scale) {
    ctx->save_for_backward({q, k, v});
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["log_scale"] = log_scale;
    const int64_t L = q.size(2);
    at::Tensor out = at::empty(v.sizes(), v.options());
    at::Tensor S = at::zeros({q.size(0), q.size(1), q.size(3), v.size(3)}, v.options());
    for (int64_t a = 0; a < L; a += chunk) {
      const int64_t c = std::min(chunk, L - a);
      rescale(S, log_scale, a / chunk - 1, a / chunk, Side::kKeys);
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
    const at::Tensor log_scale = ctx->saved_data["log_scale"].toTensor();
    const at::Tensor G = grads[0].contiguous();
    const int64_t L = q.size(2);
    at::Tensor dq = at::empty(q.sizes(), q.options());
    at::Tensor dk = at::empty(k.sizes(), k.options());
    at::Tensor dv = at::empty(v.sizes(), v.options());
    // Forward sweep: prefix S for dq.
    at::Tensor S = at::zeros({q.size(0), q.size(1), q.size(3), v.size(3)}, v.options());
    for (int64_t a = 0; a < L; a += chunk) {
      const int64_t c = std::min(chunk, L - a);
      rescale(S, log_scale, a / chunk - 1, a / chunk, Side::kKeys);
      at::Tensor kc = k.narrow(2, a, c), vc = v.narrow(2, a, c), gc = G.narrow(2, a, c);
      at::Tensor gv = at::matmul(gc, vc.transpose(-1, -2)).masked_fill_(~tril_mask(c, q.options()), 0);
      dq.narrow(2, a, c).copy_(at::matmul(gv, kc) + at::matmul(gc, S.transpose(-1, -2)));
      S.add_(at::matmul(kc.transpose(-1, -2), vc));
    }
    // Reverse sweep: suffix R for dk and dv, rescaled by exp(s_c - s_{c+1}) on the way back.
    at::Tensor R = at::zeros_like(S);
    const int64_t last = ((L - 1) / chunk) * chunk;
    for (int64_t a = last; a >= 0; a -= chunk) {
      const int64_t c = std::min(chunk, L - a);
      rescale(R, log_scale, a / chunk + 1, a / chunk, Side::kQueries);
      at::Tensor qc = q.narrow(2, a, c), kc = k.narrow(2, a, c), vc = v.narrow(2, a, c), gc = G.narrow(2, a, c);
      const at::Tensor mask = ~tril_mask(c, q.options());
      at::Tensor gv = at::matmul(gc, vc.transpose(-1, -2)).masked_fill_(mask, 0);
      at::Tensor qk = at::matmul(qc, kc.transpose(-1, -2)).masked_fill_(mask, 0);
      dk.narrow(2, a, c).copy_(at::matmul(gv.transpose(-1, -2), qc) + at::matmul(vc, R.transpose(-1, -2)));
      dv.narrow(2, a, c).copy_(at::matmul(qk.transpose(-1, -2), gc) + at::matmul(kc, R));
      R.add_(at::matmul(qc.transpose(-1, -2), gc));
    }
    return {dq, dk, dv, at::Tensor(), at::Tensor()};
  }
};

void check_shapes(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v) {
  if (qf.dim() != 4 || kf.sizes() != qf.sizes() || v.dim() != 4 || v.size(0) != qf.size(0) ||
      v.size(1) != qf.size(1) || v.size(2) != qf.size(2))
    throw Error("linear attention: expected qf, kf [B,H,L,m] and v [B,H,L,d] with matching B, H, L");
}

void check_log_scale(const at::Tensor& q, int64_t chunk, const at::Tensor& s) {
  if (!s.defined()) return;
  if (chunk < 1 || s.dim() != 4 || s.size(0) != q.size(0) || s.size(1) != q.size(1) ||
      s.size(2) != (q.size(2) + chunk - 1) / chunk || s.size(3) != q.size(3))
    throw Error("causal attention: chunk log-scale must be [B, H, ceil(L / chunk), m] for the chunk it was made with");
}

}  // namespace

at::Tensor with_ones(const at::Tensor& v) {
  auto sizes = v.sizes().vec();
  sizes.back() = 1;
  return at::cat({v, at::ones(sizes, v.options())}, -1);
}

double denominator_floor(at::ScalarType dtype) {
  return dtype == at::kDouble ? std::numeric_limits<double>::min() : static_cast<double>(std::numeric_limits<float>::min());
}

at::Tensor linear_attention(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v) {
  check_shapes(qf, kf, v);
  at::Tensor kv = at::matmul(kf.transpose(-1, -2), with_ones(v.to(kf.scalar_type())));  // [B,H,m,d+1]
  return normalize(at::matmul(qf, kv)).to(v.scalar_type());
}

at::Tensor causal_dot_product(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t chunk,
                              const at::Tensor& chunk_log_scale) {
  if (chunk < 1) throw Error("causal attention: chunk must be positive");
  check_log_scale(q, chunk, chunk_log_scale);
  return CausalDotProduct::apply(q.contiguous(), k.contiguous(), v.contiguous(), chunk,
                                 // autograd inputs must be defined: "no log-scale" travels as an empty tensor
                                 chunk_log_scale.defined() ? chunk_log_scale.detach().contiguous() : at::empty({0}, q.options()));
}

at::Tensor causal_linear_attention(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v, int64_t chunk,
                                   const at::Tensor& chunk_log_scale) {
  check_shapes(qf, kf, v);
  return normalize(causal_dot_product(qf, kf, with_ones(v.to(kf.scalar_type())), chunk, chunk_log_scale))
      .to(v.scalar_type());
}

at::Tensor feature_attention_matrix(const at::Tensor& qf, const at::Tensor& kf, bool causal, int64_t chunk,
                                    const at::Tensor& chunk_log_scale) {
  at::Tensor A;
  if (!chunk_log_scale.defined()) {
    A = at::matmul(qf, kf.transpose(-1, -2));  // [B,H,L,L]
  } else {
    // Block (query chunk c, key chunk c'): qf_c (kf_c' * exp(s_c' - s_c))^T; blocks above the diagonal are
    // cut by the causal mask.
    if (!causal) throw Error("feature attention: a chunk log-scale is for causal attention only");
    check_log_scale(qf, chunk, chunk_log_scale);
    const int64_t L = qf.size(2);
    A = at::zeros({qf.size(0), qf.size(1), L, L}, qf.options());
    for (int64_t a = 0; a < L; a += chunk)
      for (int64_t b = 0; b <= a; b += chunk) {
        const int64_t ca = std::min(chunk, L - a), cb = std::min(chunk, L - b);
        at::Tensor scale = at::exp(chunk_log_scale.select(2, b / chunk) - chunk_log_scale.select(2, a / chunk));
        at::Tensor keys = kf.narrow(2, b, cb) * scale.unsqueeze(2).to(kf.scalar_type());
        A.narrow(2, a, ca).narrow(3, b, cb).copy_(at::matmul(qf.narrow(2, a, ca), keys.transpose(-1, -2)));
      }
  }
  if (causal) A = A.masked_fill(~tril_mask(A.size(-1), A.options()), 0);
  return A / A.sum(-1, true).clamp_min(denominator_floor(A.scalar_type()));
}

at::Tensor explicit_feature_attention(const at::Tensor& qf, const at::Tensor& kf, const at::Tensor& v, bool causal,
                                      int64_t chunk, const at::Tensor& chunk_log_scale) {
  check_shapes(qf, kf, v);
  return at::matmul(feature_attention_matrix(qf, kf, causal, chunk, chunk_log_scale), v.to(qf.scalar_type()))
      .to(v.scalar_type());
}

}  // namespace performer
