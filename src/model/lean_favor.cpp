#include "model/lean_favor.h"

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include <cmath>

#include "model/feature_rows.h"
#include "model/kernels.h"
#include "model/linear_attention.h"
#include "util/error.h"
#include "util/precision.h"

namespace performer {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A fresh contiguous copy of positions [a, a + c) of x [B, H, L, d] (the projections hand over strided
// views). Always a copy, never a view: the ReLU features are made in place on it.
at::Tensor dense_chunk(const at::Tensor& x, int64_t a, int64_t c) {
  const at::Tensor part = x.narrow(2, a, c);
  return at::empty(part.sizes(), part.options().memory_format(at::MemoryFormat::Contiguous)).copy_(part);
}

// Padding rows of positions [a, a + c): [B, 1, c, 1], true at padding (kernels.h). Undefined without mask.
at::Tensor padding_chunk(const at::Tensor& key_mask, int64_t a, int64_t c) {
  return key_mask.numel() == 0 ? at::Tensor() : padding_rows(key_mask.narrow(1, a, c));
}

// One call's feature map, with the constants folded into W.
struct FeatureMap {
  bool softmax = true;
  at::Tensor raw;      // [m, d]: the projection as given, in the compute dtype
  at::Tensor W;        // [m, d]: W d^-1/4 (softmax), W / sqrt(m) (ReLU); undefined for ReLU(x) without projection
  at::Tensor Wt;       // W^T [d, m], contiguous
  double half_sq = 0;  // softmax: |x'|^2/2 = half_sq |x|^2  (x' = x d^-1/4)
  double eps = 0;      // ReLU: added to every feature

  FeatureMap(bool softmax_kernel, const at::Tensor& projection, double relu_eps, int64_t d, at::ScalarType dtype)
      : softmax(softmax_kernel), eps(relu_eps) {
    const double scale = softmax ? std::pow(static_cast<double>(d), -0.25) : 1.0;
    if (projection.numel() > 0) {
      raw = projection.to(dtype);
      W = raw * (softmax ? scale : 1.0 / std::sqrt(static_cast<double>(projection.size(0))));
      Wt = W.t().contiguous();
    }
    half_sq = 0.5 * scale * scale;
  }

  // W x' [B, H, c, m] for the fresh chunk x (ReLU without projection: x itself).
  at::Tensor project(const at::Tensor& x) const { return W.defined() ? at::matmul(x, Wt) : x; }
  // Softmax key logits W x' - |x'|^2/2 (kernels.h). (The queries' -|x'|^2/2 is a per-query constant, which
  // cancels in out = num / D like the shift t: it is left out of their features, and its gradient is zero.)
  at::Tensor key_logits(const at::Tensor& x) const { return softmax_logits(x, raw); }
  // ReLU features from the pre-activation: ReLU(z) + eps, in place (forward) or as a new tensor (backward,
  // which keeps z for the gradient's mask).
  at::Tensor relu_(at::Tensor& z) const { return z.clamp_min_(0.0).add_(eps); }
  at::Tensor relu(const at::Tensor& z) const { return z.clamp_min(0.0).add_(eps); }
  // dLoss/dz from dLoss/dphi and the pre-activation z: zero where z <= 0, in one fused pass. (Not from the
  // features: for 0 < z < eps 2^-24, z + eps rounds to eps in float32 and phi would hide that z > 0.)
  at::Tensor relu_grad(const at::Tensor& dphi, const at::Tensor& z) const { return at::threshold_backward(dphi, z, 0.0); }
  // dLoss/dx of the chunk x from dLoss/d(pre-activation): W^T dz (ReLU without projection: dz itself), and
  // for softmax keys the |x'|^2/2 term: dx = W^T dl - 2 half_sq x sum_r dl_r.
  at::Tensor input_grad(const at::Tensor& dz, const at::Tensor& x = {}) const {
    at::Tensor dx = W.defined() ? at::matmul(dz, W) : dz;
    if (x.defined()) dx.sub_(x * dz.sum(-1, /*keepdim=*/true).mul_(2.0 * half_sq));
    return dx;
  }
};

// The large products of both passes, over the leading [B, H] of 4-D operands, through bmm on [B*H, ., .]
// views: transposed operands reach BLAS as they are, where at::matmul on LibTorch 1.13 copied them first
// (83 of 600 ms at L = 16384, d 64, m 256, measured with the profiler). With `low` = bf16 the operands are
// rounded to bf16 and the GEMM accumulates in float32; its bf16 result is widened where it is used. Where
// this LibTorch's bf16 GEMMs sum in bf16 (util/precision.h), the rounded operands are widened back and
// multiplied in float32, and the result rounded to bf16: what a float32-summing bf16 GEMM gives, up to the
// order of its sums.
struct Products {
  at::ScalarType low = at::ScalarType::Undefined;  // Undefined: the operands' own dtype

  bool emulated(const at::Tensor& x) const { return low == at::kBFloat16 && !bf16_gemm_accumulates_in_float32(x.device()); }
  at::Tensor operand(const at::Tensor& x) const {
    if (low == at::ScalarType::Undefined) return x;
    return emulated(x) ? x.to(low).to(x.scalar_type()) : x.to(low);
  }
  // A product of operand()s, as the bf16 GEMM would return it.
  at::Tensor product(const at::Tensor& a, const at::Tensor& b) const {
    const at::Tensor r = at::bmm(operand(a), operand(b));
    return emulated(a) ? r.to(low) : r;
  }
  // a b: [B, H, n, k] x [B, H, k, p] -> [B, H, n, p], in a's dtype.
  at::Tensor mm(const at::Tensor& a, const at::Tensor& b) const {
    at::Tensor r = product(a.flatten(0, 1), b.flatten(0, 1));
    return r.view({a.size(0), a.size(1), r.size(1), r.size(2)}).to(a.scalar_type());
  }
  // a b: [G, n, k] x [G, k, p] -> [G, n, p], in a's dtype; into `out` (contiguous, a's dtype) when given.
  at::Tensor bmm(const at::Tensor& a, const at::Tensor& b, at::Tensor out = {}) const {
    if (low == at::ScalarType::Undefined) return out.defined() ? at::bmm_out(out, a, b) : at::bmm(a, b);
    at::Tensor r = product(a, b).to(a.scalar_type());
    return out.defined() ? out.copy_(r) : r;
  }
  // acc += a b in place, acc [B, H, n, p] contiguous (the sum stays in acc's dtype).
  void add_mm(at::Tensor& acc, const at::Tensor& a, const at::Tensor& b) const {
    if (low == at::ScalarType::Undefined) {
      acc.view({-1, acc.size(2), acc.size(3)}).baddbmm_(a.flatten(0, 1), b.flatten(0, 1));
      return;
    }
    acc.view({-1, acc.size(2), acc.size(3)}).add_(product(a.flatten(0, 1), b.flatten(0, 1)));
  }
};

// g = [G, -G . out] / D per query, [.., d+1], from G = dLoss/dout, out and D of the same queries. A floored
// normalizer means a query without any real key (or with all features 0): its output is 0 whatever q, k, v
// are, so it passes no gradient (G / floor would overflow, and inf x 0 be NaN).
at::Tensor normalized_output_grad(const at::Tensor& G, const at::Tensor& out, const at::Tensor& D, double floor) {
  at::Tensor dD = (G * out).sum(-1, /*keepdim=*/true).neg_();
  return at::cat({G, dD}, -1).div_(D.clamp_min(floor)).masked_fill_(D < floor, 0.0);
}

// The grouped path (model/lean_favor.h): features by the fused rows of model/feature_rows.h, for groups of
// (sequence, head) pairs that each hold all L positions, so that every product runs over whole sequences
// (phi(K)^T [V, 1] with L terms) and no key shift is rescaled. Same formulas, same saved tensors.
struct Grouped {
  bool softmax;
  float eps;
  int64_t B, H, L, d, m, N, group;
  at::Tensor qn, kn, v1;  // [N, L, d], [N, L, d], [N, L, d+1], contiguous
  at::Tensor mask;        // [B, L] bool, contiguous, or undefined
  at::Tensor W, Wt, Waug;  // W' [m, d] (W d^-1/4, or W / sqrt(m) for ReLU), W'^T [d, m], [W', 1] [m, d+1]
  FeatureRowsArgs keys, queries;

  // v1_given: [V, 1] as an earlier Grouped of the same call made it (the backward reuses the forward's).
  Grouped(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
          const FeatureMap& f, const at::Tensor& v1_given = {})
      : softmax(f.softmax), eps(static_cast<float>(f.eps)), B(q.size(0)), H(q.size(1)), L(q.size(2)), d(q.size(3)),
        m(f.W.size(0)), N(B * H) {
    group = std::max<int64_t>(1, kAutoChunkValues / (L * m));
    qn = q.reshape({N, L, d}).contiguous();  // no copy where q is contiguous already (favor_core, the backward)
    kn = k.reshape({N, L, d}).contiguous();
    v1 = v1_given.defined() ? v1_given.view({N, L, d + 1}) : with_ones(v).reshape({N, L, d + 1});
    if (key_mask.numel() > 0) mask = key_mask.contiguous();
    W = f.W;
    Wt = f.Wt;
    Waug = at::cat({W, at::ones({m, 1}, W.options())}, 1);
    keys = FeatureRowsArgs{kn.data_ptr<float>(), Wt.data_ptr<float>(), mask.defined() ? mask.data_ptr<bool>() : nullptr,
                           H, L, d, m, static_cast<float>(f.half_sq)};
    queries = keys;
    queries.x = qn.data_ptr<float>();
    queries.real = nullptr;
  }

  // Features of rows [g0, g0 + phi.size(0)) into phi [G, L, m], the rows split among threads. Softmax: s [N, m]
  // is found (find_shift) or read, t [N, L] written for queries. ReLU: z, when defined, gets the pre-activations.
  void key_rows(int64_t g0, bool find_shift, const at::Tensor& s, const at::Tensor& phi, const at::Tensor& z = {}) const {
    if (softmax)
      parallel_softmax_key_rows(keys, g0, g0 + phi.size(0), find_shift, s.data_ptr<float>(), phi.data_ptr<float>());
    else
      parallel_relu_rows(keys, g0, g0 + phi.size(0), eps, phi.data_ptr<float>(), z.defined() ? z.data_ptr<float>() : nullptr);
  }
  void query_rows(int64_t g0, const at::Tensor& s, const at::Tensor& t, const at::Tensor& phi, const at::Tensor& z = {}) const {
    if (softmax)
      parallel_softmax_query_rows(queries, g0, g0 + phi.size(0), s.data_ptr<float>(), t.data_ptr<float>(),
                                  phi.data_ptr<float>());
    else
      parallel_relu_rows(queries, g0, g0 + phi.size(0), eps, phi.data_ptr<float>(), z.defined() ? z.data_ptr<float>() : nullptr);
  }
  // dLoss/d(pre-activation) from dLoss/dphi (in place): softmax dphi * phi, ReLU dphi where z > 0.
  at::Tensor pre_activation_grad(at::Tensor& dphi, const at::Tensor& phi, const at::Tensor& z) const {
    return softmax ? dphi.mul_(phi) : at::threshold_backward(dphi, z, 0.0);
  }
};

// Whether the grouped path runs: float32 on the CPU, the automatic chunk, a projection W (softmax, or ReLU
// with one) whose m is a multiple of the rows' vector width, and one pair's [L, m] features within the
// automatic chunk's budget.
bool grouped_path(const at::Tensor& q, const at::Tensor& projection, int64_t chunk_option) {
  if (chunk_option != 0 || !q.device().is_cpu() || q.scalar_type() != at::kFloat) return false;
  if (!projection.defined() || projection.numel() == 0) return false;
  const int64_t m = projection.size(0);
  return m % 16 == 0 && q.size(2) * m <= kAutoChunkValues;
}

void grouped_forward(const Grouped& g, const Products& P, double floor, at::Tensor& KV, at::Tensor& s, at::Tensor& t,
                     at::Tensor& den, at::Tensor& out) {
  const int64_t N = g.N, L = g.L, d = g.d, m = g.m;
  const auto opts = g.qn.options();
  at::Tensor kf = at::empty({std::min(g.group, N), L, m}, opts), qf = at::empty_like(kf);
  at::Tensor KVn = KV.view({N, m, d + 1}), sn = s.view({N, m}), outn = out.view({N, L, d});
  at::Tensor tn = g.softmax ? t.view({N, L}) : t, denn = den.view({N, L, 1});
  for (int64_t g0 = 0; g0 < N; g0 += g.group) {
    const int64_t G = std::min(g.group, N - g0);
    at::Tensor kfg = kf.narrow(0, 0, G), qfg = qf.narrow(0, 0, G), KVg = KVn.narrow(0, g0, G);
    g.key_rows(g0, /*find_shift=*/true, sn, kfg);
    P.bmm(kfg.transpose(1, 2), g.v1.narrow(0, g0, G), KVg);  // KV = phi(K)^T [V, 1]   [G, m, d+1]
    g.query_rows(g0, sn, tn, qfg);
    at::Tensor nd = P.bmm(qfg, KVg);                          // [num, D] = phi(Q) KV  [G, L, d+1]
    at::Tensor dc = nd.narrow(-1, d, 1);
    denn.narrow(0, g0, G).copy_(dc);
    at::Tensor out_g = outn.narrow(0, g0, G);
    at::div_out(out_g, nd.narrow(-1, 0, d), dc.clamp_min(floor));
  }
}

// dq, dk, dv [B, H, L, d] contiguous, from G = dLoss/dout.
void grouped_backward(const Grouped& g, const Products& P, double floor, const at::Tensor& G_out, const at::Tensor& KV,
                      const at::Tensor& s, const at::Tensor& den, const at::Tensor& out, at::Tensor& dq, at::Tensor& dk,
                      at::Tensor& dv) {
  const int64_t N = g.N, L = g.L, d = g.d, m = g.m;
  const auto opts = g.qn.options();
  const int64_t rows = std::min(g.group, N);
  at::Tensor kf = at::empty({rows, L, m}, opts), qf = at::empty_like(kf);
  at::Tensor t = g.softmax ? at::empty({N, L}, opts) : at::Tensor(), z = g.softmax ? at::Tensor() : at::empty_like(kf);
  const at::Tensor sn = s.view({N, m}), KVn = KV.view({N, m, d + 1}), denn = den.view({N, L, 1});
  const at::Tensor outn = out.view({N, L, d}), Gn = G_out.reshape({N, L, d});
  at::Tensor dqn = dq.view({N, L, d}), dkn = dk.view({N, L, d}), dvn = dv.view({N, L, d});
  at::Tensor dKV = at::empty({rows, m, d + 1}, opts);
  for (int64_t g0 = 0; g0 < N; g0 += g.group) {
    const int64_t G = std::min(g.group, N - g0);
    at::Tensor kfg = kf.narrow(0, 0, G), qfg = qf.narrow(0, 0, G), dKVg = dKV.narrow(0, 0, G);
    const at::Tensor zg = z.defined() ? z.narrow(0, 0, G) : z, KVg = KVn.narrow(0, g0, G);
    // Queries: g_i = [G_i, -G_i . out_i] / D_i;  dphi(q_i) = KV g_i;  dKV = sum_i phi(q_i) g_i^T.
    g.query_rows(g0, sn, t, qfg, zg);
    const at::Tensor gr = normalized_output_grad(Gn.narrow(0, g0, G), outn.narrow(0, g0, G), denn.narrow(0, g0, G),
                                                 floor);  // [G,L,d+1]
    at::Tensor dphi = P.bmm(gr, KVg.transpose(1, 2));  // [G,L,m]
    at::Tensor dz = g.pre_activation_grad(dphi, qfg, zg);
    P.bmm(qfg.transpose(1, 2), gr, dKVg);
    at::Tensor dq_g = dqn.narrow(0, g0, G).view({G * L, d});
    at::mm_out(dq_g, dz.view({G * L, m}), g.W);
    // Keys: dphi(k_j) = dKV [v_j, 1];  dv_j = dKV[:, :d]^T phi(k_j);  dk_j = W'^T dz_j, and for softmax
    // - 2 half_sq k_j sum_r dz_jr (the logits' -|x'|^2/2).
    g.key_rows(g0, /*find_shift=*/false, sn, kfg, zg);
    const at::Tensor v1g = g.v1.narrow(0, g0, G);
    at::Tensor dkf = P.bmm(v1g, dKVg.transpose(1, 2));  // [G,L,m]
    at::Tensor dl = g.pre_activation_grad(dkf, kfg, zg);  // 0 at padding: softmax kf is 0 there, ReLU's z
    at::Tensor dv_g = dvn.narrow(0, g0, G);
    P.bmm(kfg, dKVg.narrow(-1, 0, d), dv_g);
    at::Tensor dk_g = dkn.narrow(0, g0, G);
    if (g.softmax) {
      at::Tensor r = at::mm(dl.view({G * L, m}), g.Waug).view({G, L, d + 1});  // [W'^T dl, sum_r dl_r]
      at::sub_out(dk_g, r.narrow(-1, 0, d), g.kn.narrow(0, g0, G) * r.narrow(-1, d, 1) * (2.0 * g.keys.half_sq));
    } else {
      at::Tensor dk_flat = dk_g.view({G * L, d});
      at::mm_out(dk_flat, dl.view({G * L, m}), g.W);
    }
  }
}

struct LeanFavor : public torch::autograd::Function<LeanFavor> {
  // What backward reads: q, k, v (the grouped path: its contiguous q, k and [V, 1]), projection, key_mask,
  // KV, s, t, den, out, and the options.
  static void save(AutogradContext* ctx, const variable_list& tensors, bool softmax, double eps, int64_t chunk,
                   int64_t products) {
    ctx->save_for_backward(tensors);
    ctx->saved_data["softmax"] = softmax;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["chunk"] = chunk;
    ctx->saved_data["products"] = products;
  }

  // q, k, v [B,H,L,d]; projection [m,d] or empty; key_mask [B,L] or empty.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& projection, const at::Tensor& key_mask, bool softmax, double eps,
                            int64_t chunk, int64_t products) {
    const int64_t B = q.size(0), H = q.size(1), L = q.size(2), d = q.size(3);
    const Products P{static_cast<at::ScalarType>(products)};
    const auto dtype = q.scalar_type();
    const FeatureMap f(softmax, projection, eps, d, dtype);
    const int64_t m = f.W.defined() ? f.W.size(0) : d;
    const double floor = denominator_floor(dtype);
    const auto opts = q.options();

    if (chunk == 0) {  // the grouped path
      const Grouped g(q, k, v, key_mask, f);
      at::Tensor KV = at::empty({B, H, m, d + 1}, opts);
      at::Tensor s = softmax ? at::empty({B, H, 1, m}, opts) : at::zeros({B, H, 1, m}, opts);  // ReLU: no shift
      at::Tensor t = softmax ? at::empty({B, H, L, 1}, opts) : at::empty({0}, opts);
      at::Tensor den = at::empty({B, H, L, 1}, opts), out = at::empty({B, H, L, d}, opts);
      grouped_forward(g, P, floor, KV, s, t, den, out);
      // The contiguous q, k and [V, 1] the rows read are saved in place of the inputs (the same sizes, up to
      // v's column of ones), so the backward does not copy them again.
      save(ctx, {g.qn.view(q.sizes()), g.kn.view(k.sizes()), g.v1, projection, key_mask, KV, s, t, den, out}, softmax,
           eps, chunk, products);
      return out;
    }

    // Key pass: KV = sum_j phi(k_j) [v_j, 1]^T, with the softmax key shift s found on the way.
    at::Tensor KV = at::zeros({B, H, m, d + 1}, opts);
    at::Tensor s = at::full({B, H, 1, m}, -INFINITY, opts);  // running max of the key logits (softmax)
    for (int64_t a = 0; a < L; a += chunk) {
      const int64_t c = std::min(chunk, L - a);
      const at::Tensor pad = padding_chunk(key_mask, a, c);
      at::Tensor kf;
      if (softmax) {
        at::Tensor l = f.key_logits(dense_chunk(k, a, c));           // [B,H,c,m]
        if (pad.defined()) l.masked_fill_(pad, -INFINITY);
        at::Tensor s_new = at::maximum(s, l.amax(2, /*keepdim=*/true));
        // exp(s_old - s_new) <= 1; NaN (-inf - -inf) only while no real key was seen, where KV is still 0.
        KV.mul_(at::exp(s - s_new).nan_to_num_(0.0).transpose(-1, -2));
        s = s_new;
        kf = l.sub_(s.masked_fill(at::isinf(s), 0.0)).exp_();      // exp(-inf) = 0 at padding
      } else {
        at::Tensor z = f.project(dense_chunk(k, a, c));
        kf = f.relu_(z);
        if (pad.defined()) kf.masked_fill_(pad, 0.0);
      }
      P.add_mm(KV, kf.transpose(-1, -2), with_ones(dense_chunk(v, a, c)));
    }
    s.masked_fill_(at::isinf(s), 0.0);  // no real key at all: KV = 0

    // Query pass: [num_i, D_i] = phi(q_i)^T KV.
    at::Tensor out = at::empty({B, H, L, d}, opts);
    at::Tensor den = at::empty({B, H, L, 1}, opts);
    at::Tensor t = softmax ? at::empty({B, H, L, 1}, opts) : at::empty({0}, opts);
    for (int64_t a = 0; a < L; a += chunk) {
      const int64_t c = std::min(chunk, L - a);
      at::Tensor z = f.project(dense_chunk(q, a, c)), qf;
      if (softmax) {
        z.add_(s);                                                     // w_r.q_i' + s_r
        at::Tensor tc = z.amax(-1, /*keepdim=*/true);                  // t_i
        t.narrow(2, a, c).copy_(tc);
        qf = z.sub_(tc).exp_();
      } else {
        qf = f.relu_(z);
      }
      at::Tensor nd = P.mm(qf, KV);                                    // [B,H,c,d+1]
      at::Tensor dc = nd.narrow(-1, d, 1);
      den.narrow(2, a, c).copy_(dc);
      at::Tensor out_c = out.narrow(2, a, c);
      at::div_out(out_c, nd.narrow(-1, 0, d), dc.clamp_min(floor));
    }
    save(ctx, {q, k, v, projection, key_mask, KV, s, t, den, out}, softmax, eps, chunk, products);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (at::GradMode::is_enabled())
      throw Error("FAVOR attention: the lean core is differentiable once (no create_graph / double backward); set "
                  "model.favor_lean: false for higher derivatives");
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &projection = saved[3], &key_mask = saved[4];
    const at::Tensor &KV = saved[5], &s = saved[6], &t = saved[7], &den = saved[8], &out = saved[9];
    const bool softmax = ctx->saved_data["softmax"].toBool();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const Products P{static_cast<at::ScalarType>(ctx->saved_data["products"].toInt())};
    const int64_t L = q.size(2), d = q.size(3);
    const auto dtype = q.scalar_type();
    const FeatureMap f(softmax, projection, ctx->saved_data["eps"].toDouble(), d, dtype);
    const double floor = denominator_floor(dtype);
    const at::Tensor G = grads[0].to(dtype);
    const auto opts = q.options();
    at::Tensor dq = at::empty(q.sizes(), opts), dk = at::empty(k.sizes(), opts), dv = at::empty(q.sizes(), opts);
    if (chunk == 0) {  // the grouped path: saved[2] is [V, 1] [B*H, L, d+1]
      grouped_backward(Grouped(q, k, at::Tensor(), key_mask, f, v), P, floor, G, KV, s, den, out, dq, dk, dv);
      return {dq, dk, dv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    }

    // Query pass: g_i = [G_i, -G_i . out_i] / D_i;  dphi(q_i) = KV g_i;  dKV = sum_i phi(q_i) g_i^T.
    at::Tensor dKV = at::zeros_like(KV);
    const at::Tensor KVt = KV.transpose(-1, -2);
    for (int64_t a = 0; a < L; a += chunk) {
      const int64_t c = std::min(chunk, L - a);
      at::Tensor z = f.project(dense_chunk(q, a, c));
      const at::Tensor qf = softmax ? z.add_(s).sub_(t.narrow(2, a, c)).exp_() : f.relu(z);
      const at::Tensor g =
          normalized_output_grad(G.narrow(2, a, c), out.narrow(2, a, c), den.narrow(2, a, c), floor);  // [B,H,c,d+1]
      at::Tensor dqf = P.mm(g, KVt);                                    // [B,H,c,m]
      P.add_mm(dKV, qf.transpose(-1, -2), g);
      at::Tensor dz = softmax ? dqf.mul_(qf) : f.relu_grad(dqf, z);
      dq.narrow(2, a, c).copy_(f.input_grad(dz));
    }

    // Key pass: dphi(k_j) = dKV [v_j, 1];  dv_j = dKV[:, :d]^T phi(k_j).
    const at::Tensor dKVt = dKV.transpose(-1, -2), dS = dKV.narrow(-1, 0, d);
    for (int64_t a = 0; a < L; a += chunk) {
      const int64_t c = std::min(chunk, L - a);
      const at::Tensor pad = padding_chunk(key_mask, a, c);
      const at::Tensor x = dense_chunk(k, a, c);
      at::Tensor kf, z;
      if (softmax) {
        at::Tensor l = f.key_logits(x);
        if (pad.defined()) l.masked_fill_(pad, -INFINITY);
        kf = l.sub_(s).exp_();
      } else {
        z = f.project(x);
        if (pad.defined()) z = z.masked_fill(pad, 0.0);  // z <= 0: relu_grad drops a padding key's gradient
        kf = f.relu(z);
        if (pad.defined()) kf.masked_fill_(pad, 0.0);
      }
      at::Tensor dkf = P.mm(with_ones(dense_chunk(v, a, c)), dKVt);  // [B,H,c,m]
      // dz = 0 at padding: softmax kf = 0 there, ReLU's z is.
      at::Tensor dz = softmax ? dkf.mul_(kf) : f.relu_grad(dkf, z);
      dv.narrow(2, a, c).copy_(P.mm(kf, dS));
      dk.narrow(2, a, c).copy_(softmax ? f.input_grad(dz, x) : f.input_grad(dz));
    }
    return {dq, dk, dv, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

int64_t auto_favor_chunk(int64_t B, int64_t H, int64_t L, int64_t m, bool cuda) {
  const int64_t per_position = std::max<int64_t>(1, B * H * m);
  const int64_t values = cuda ? kAutoChunkValuesCuda : kAutoChunkValues;
  return std::max<int64_t>(1, std::min(L, std::max<int64_t>(16, values / per_position)));
}

at::Tensor lean_favor_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& W,
                                const at::Tensor& key_mask, const LeanFavorOptions& o) {
  if (q.dim() != 4 || k.sizes() != q.sizes() || v.sizes() != q.sizes())
    throw Error("FAVOR attention: expected q, k, v of the same shape [B, H, L, d]");
  if (q.scalar_type() != at::kFloat && q.scalar_type() != at::kDouble)
    throw Error("FAVOR attention: q, k, v must be float32 or float64");
  if (k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type())
    throw Error("FAVOR attention: q, k, v must share one dtype");
  if (o.relu_eps < 0) throw Error("FAVOR attention: the ReLU features' eps must be >= 0");
  if (o.chunk < 0) throw Error("FAVOR attention: chunk must be positive (or 0: automatic), got " + std::to_string(o.chunk));
  const bool low_products = o.products != at::ScalarType::Undefined && o.products != q.scalar_type();
  if (low_products && (o.products != at::kBFloat16 || q.scalar_type() != at::kFloat))
    throw Error("FAVOR attention: low-precision products are bf16 operands of float32 q, k, v");
  const bool softmax = o.kernel == FeatureKernel::kSoftmax;
  if (softmax && (!W.defined() || W.numel() == 0)) throw Error("FAVOR attention: softmax features need a projection W");
  if (W.defined() && (W.dim() != 2 || W.size(1) != q.size(3)))
    throw Error("FAVOR attention: W must be [m, d] with d = " + std::to_string(q.size(3)));
  if (key_mask.defined() &&
      (key_mask.dim() != 2 || key_mask.size(0) != q.size(0) || key_mask.size(1) != q.size(2)))
    throw Error("FAVOR attention: key mask must be [B, L]");
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);  // float32 features, as below
  // Autograd inputs must be defined: "none" travels as an empty tensor. W and the mask take no gradient.
  const at::Tensor none = at::empty({0}, q.options());
  const int64_t m = W.defined() ? W.size(0) : q.size(3);
  // chunk 0 tells the autograd function to take the grouped path.
  const int64_t chunk = grouped_path(q, W, o.chunk) ? 0
                        : o.chunk > 0                        ? o.chunk
                                                             : auto_favor_chunk(q.size(0), q.size(1), q.size(2), m, q.is_cuda());
  return LeanFavor::apply(q, k, v, W.defined() ? W.detach() : none,
                          key_mask.defined() ? key_mask.to(at::kBool) : none.to(at::kBool), softmax, o.relu_eps,
                          chunk, static_cast<int64_t>(low_products ? o.products : at::ScalarType::Undefined));
}

}  // namespace performer
