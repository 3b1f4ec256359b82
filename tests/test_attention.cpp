// The attention math against naive references (double precision where it matters).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "model/attention.h"
#include "model/lean_favor.h"
#include "model/exact_attention.h"
#include "model/kernels.h"
#include "model/linear_attention.h"
#include "test_gradcheck.h"
#include "util/error.h"
#include "util/precision.h"

using namespace performer;

namespace {

double rel_error(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

at::Tensor randn(std::vector<int64_t> shape, int64_t seed, at::ScalarType t = at::kDouble) {
  torch::manual_seed(static_cast<uint64_t>(seed));
  return torch::randn(shape, torch::TensorOptions().dtype(t));
}

// Naive O(L^2) softmax attention in double: softmax(q k^T / sqrt(d)) v.
at::Tensor naive_softmax_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal) {
  at::Tensor s = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(q.size(-1)));
  if (causal) s = s.masked_fill(~torch::ones({q.size(2), q.size(2)}, torch::kBool).tril(), -INFINITY);
  return at::matmul(at::softmax(s, -1), v);
}

}  // namespace

TEST(RandomFeatures, BlocksAreOrthogonalAndDrawsDeterministic) {
  const int64_t m = 200, d = 64;  // three full blocks and a partial one
  at::Tensor W = orthogonal_gaussian_projection(m, d, RowNorms::kSqrtD, 7);
  ASSERT_EQ(W.sizes(), (std::vector<int64_t>{m, d}));
  for (int64_t a = 0; a < m; a += d) {
    at::Tensor blk = W.narrow(0, a, std::min(d, m - a));
    at::Tensor gram = at::matmul(blk, blk.t());
    EXPECT_LT((gram - d * torch::eye(blk.size(0), torch::kDouble)).abs().max().item<double>(), 1e-9) << "block " << a;
  }
  // Rows of different blocks are independent, not orthogonal.
  EXPECT_GT(at::matmul(W.narrow(0, 0, d), W.narrow(0, d, d).t()).abs().max().item<double>(), 1.0);
  // chi(d) norms: orthogonal directions, varied norms with E|w|^2 = d.
  at::Tensor C = orthogonal_gaussian_projection(4096, d, RowNorms::kChi, 7);
  at::Tensor sq = C.pow(2).sum(1);
  EXPECT_NEAR(sq.mean().item<double>(), static_cast<double>(d), 1.0);
  EXPECT_GT(sq.std().item<double>(), 5.0);  // chi^2(64) has sd 11.3
  at::Tensor dirs = C.narrow(0, 0, d) / C.narrow(0, 0, d).norm(2, {1}, true);
  EXPECT_LT((at::matmul(dirs, dirs.t()) - torch::eye(d, torch::kDouble)).abs().max().item<double>(), 1e-9);
  // Pure function of the seed.
  EXPECT_TRUE(torch::equal(C, orthogonal_gaussian_projection(4096, d, RowNorms::kChi, 7)));
  EXPECT_FALSE(torch::equal(C, orthogonal_gaussian_projection(4096, d, RowNorms::kChi, 8)));
}

TEST(RandomFeatures, RedrawIsAPureFunctionOfSeedLayerAndCount) {
  AttentionOptions o;
  o.d_model = 64;
  o.heads = 2;
  o.features = 48;
  o.layer = 3;
  SelfAttention a(o), b(o);
  at::Tensor w0 = a->projection().clone();
  EXPECT_TRUE(torch::equal(w0, b->projection()));
  a->redraw(5);
  EXPECT_EQ(a->current_draw(), 5);
  EXPECT_FALSE(torch::equal(a->projection(), w0));
  b->redraw(4);
  b->redraw(5);
  EXPECT_TRUE(torch::equal(a->projection(), b->projection()));
  a->redraw(6);
  EXPECT_FALSE(torch::equal(a->projection(), b->projection()));
  a->redraw(0);
  EXPECT_TRUE(torch::equal(a->projection(), w0));
  o.layer = 4;
  SelfAttention other_layer(o);
  EXPECT_FALSE(torch::equal(other_layer->projection(), w0));
}

TEST(FavorSoftmax, ErrorFallsWithFeatureCount) {
  // The estimator's variance grows like exp(|q' + k'|^2) (q' = q d^-1/4), so the input scale decides how
  // many features are needed. Here q, k ~ N(0, 0.5^2) in d = 64 (|q'|^2 ~ 2, logits with sd 0.25), v ~ N(0, 1),
  // L = 256, mean over 4 seeds. (At q, k ~ N(0, 1) the same code needs m ~ 10^5 for a 0.5 error; the paper's
  // trained models keep q/k norms small.)
  const int64_t L = 256, d = 64;
  const double sigma = 0.5;
  const std::vector<int64_t> ms = {16, 64, 256, 1024, 4096};
  std::vector<double> err(ms.size(), 0.0);
  double err_mean_v = 0;
  const int seeds = 4;
  for (int s = 0; s < seeds; ++s) {
    at::Tensor q = randn({1, 1, L, d}, 10 * s + 1) * sigma, k = randn({1, 1, L, d}, 10 * s + 2) * sigma;
    at::Tensor v = randn({1, 1, L, d}, 10 * s + 3);
    at::Tensor exact = naive_softmax_attention(q, k, v, false);
    err_mean_v += rel_error(v.mean(2, true).expand_as(exact), exact) / seeds;
    for (size_t i = 0; i < ms.size(); ++i) {
      at::Tensor W = orthogonal_gaussian_projection(ms[i], d, RowNorms::kChi, 100 + static_cast<uint64_t>(s));
      FeatureMaps f = softmax_features(q, k, W, {});
      at::Tensor out = linear_attention(f.q, f.k, v);
      err[i] += rel_error(out, exact) / seeds;
    }
  }
  for (size_t i = 0; i < ms.size(); ++i)
    std::printf("  m=%-5lld relative error %.4f  x sqrt(m) = %.2f\n", static_cast<long long>(ms[i]), err[i],
                err[i] * std::sqrt(static_cast<double>(ms[i])));
  std::printf("  predicting mean(V): relative error %.4f\n", err_mean_v);
  for (size_t i = 1; i < ms.size(); ++i) EXPECT_LT(err[i], err[i - 1]);
  // ~1/sqrt(m): 64x more features give 8x less error ideally; require at least 4x.
  EXPECT_LT(err[4], err[1] / 4);
  EXPECT_LT(err[2], 0.5);  // bound at m = 256, d = 64 for this scale
  // With enough features the output follows the attention, not the mean(V) that a dominating epsilon gives.
  EXPECT_LT(err[4], 0.7 * err_mean_v);
}

TEST(LinearAttention, EqualsExplicitFormulaWithSameFeatures) {
  const int64_t B = 2, H = 3, L = 45, d = 16, m = 24;
  at::Tensor q = randn({B, H, L, d}, 1), k = randn({B, H, L, d}, 2), v = randn({B, H, L, d}, 3);
  at::Tensor W = orthogonal_gaussian_projection(m, d, RowNorms::kChi, 4);
  for (int kind = 0; kind < 2; ++kind) {
    for (bool causal : {false, true}) {
      // Causal softmax features carry a per-chunk shift (chunk 8), which the explicit formula applies too.
      FeatureMaps f = kind == 0 ? softmax_features(q, k, W, {}, causal, 8) : relu_features(q, k, W, 1e-3, {});
      at::Tensor ref = explicit_feature_attention(f.q, f.k, v, causal, f.chunk, f.chunk_log_scale);
      at::Tensor fast = causal ? causal_linear_attention(f.q, f.k, v, 8, f.chunk_log_scale) : linear_attention(f.q, f.k, v);
      EXPECT_LT(rel_error(fast, ref), 1e-12) << "kind " << kind << " causal " << causal;
      // float32: within 1e-5 relative.
      auto f32 = [](const at::Tensor& x) { return x.defined() ? x.to(at::kFloat) : x; };
      at::Tensor fast32 = causal ? causal_linear_attention(f32(f.q), f32(f.k), f32(v), 8, f32(f.chunk_log_scale))
                                 : linear_attention(f32(f.q), f32(f.k), f32(v));
      EXPECT_LT(rel_error(fast32.to(at::kDouble), ref), 1e-5) << "float32, kind " << kind << " causal " << causal;
      // Softmax features: the same attention as the naive softmax-kernel estimate phi(q).phi(k) without
      // stabilizers (the shifts cancel), computed in double from the unshifted logits.
      if (kind == 0) {
        at::Tensor pq = at::exp(softmax_logits(q, W)), pk = at::exp(softmax_logits(k, W));
        at::Tensor naive = explicit_feature_attention(pq, pk, v, causal);
        EXPECT_LT(rel_error(fast, naive), 1e-12) << "vs unstabilized features, causal " << causal;
      }
    }
  }
}

TEST(CausalLinearAttention, CustomBackwardMatchesAutogradOfNaiveFormula) {
  const int64_t B = 2, H = 2, L = 37, m = 6, e = 5;  // L not a multiple of the chunk
  at::Tensor q = randn({B, H, L, m}, 11).abs().requires_grad_(), k = randn({B, H, L, m}, 12).abs().requires_grad_();
  at::Tensor v = randn({B, H, L, e}, 13).requires_grad_();
  at::Tensor G = randn({B, H, L, e}, 14);
  // Unnormalized product, custom backward.
  auto grads = [&](const at::Tensor& out) {
    auto g = torch::autograd::grad({(out * G).sum()}, {q, k, v});
    return g;
  };
  auto fast = grads(causal_dot_product(q, k, v, 8));
  at::Tensor tril = torch::ones({L, L}, torch::kBool).tril();
  auto naive = grads(at::matmul(at::matmul(q, k.transpose(-1, -2)).masked_fill(~tril, 0), v));
  for (int i = 0; i < 3; ++i) EXPECT_LT((fast[i] - naive[i]).abs().max().item<double>(), 1e-8) << "input " << i;
  // Normalized causal attention: custom path vs explicit formula.
  auto fa = grads(causal_linear_attention(q, k, v, 5));
  auto na = grads(explicit_feature_attention(q, k, v, true));
  for (int i = 0; i < 3; ++i) EXPECT_LT((fa[i] - na[i]).abs().max().item<double>(), 1e-8) << "normalized, input " << i;
}

TEST(CausalLinearAttention, FiniteDifferences) {
  const int64_t L = 5, m = 3, e = 2;
  at::Tensor G = randn({1, 1, L, e}, 24);
  auto loss = [&](const std::vector<at::Tensor>& in) { return (causal_linear_attention(in[0], in[1], in[2], 2) * G).sum(); };
  EXPECT_LT(performer::testing::worst_gradient_error(
                loss, {randn({1, 1, L, m}, 21).abs(), randn({1, 1, L, m}, 22).abs(), randn({1, 1, L, e}, 23)}),
            1e-6);
}

TEST(ExactAttention, EqualsSoftmaxFormula) {
  const int64_t B = 2, H = 2, L = 19, d = 8;
  at::Tensor q = randn({B, H, L, d}, 31, at::kFloat), k = randn({B, H, L, d}, 32, at::kFloat);
  at::Tensor v = randn({B, H, L, d}, 33, at::kFloat);
  for (bool causal : {false, true}) {
    at::Tensor ref = naive_softmax_attention(q.to(at::kDouble), k.to(at::kDouble), v.to(at::kDouble), causal);
    EXPECT_LT(rel_error(exact_attention(q, k, v, {}, causal).to(at::kDouble), ref), 1e-5);
    at::Tensor P = exact_attention_matrix(q, k, {}, causal);
    EXPECT_LT((P.sum(-1) - 1).abs().max().item<double>(), 1e-5);
  }
}

// Key padding through whichever kernel exact_attention uses (fused on LibTorch 2.x, plain on 1.x), forward
// and backward, against a float64 reference that masks keys explicitly. Right padding (every batch of
// data/batches.h) is compared on real positions (with causal attention the fused kernel then runs without
// a mask and its padding rows differ); a mask with a hole mid-row at every position, except that the fused
// causal kernel (2.x) refuses it.
TEST(ExactAttention, PaddingMatchesTheMaskedFormulaForwardAndBackward) {
  const int64_t B = 2, H = 2, L = 23, d = 8;
  at::Tensor q = randn({B, H, L, d}, 41, at::kFloat), k = randn({B, H, L, d}, 42, at::kFloat);
  at::Tensor v = randn({B, H, L, d}, 43, at::kFloat), G = randn({B, H, L, d}, 44, at::kFloat);
  at::Tensor right = torch::ones({B, L}, torch::kBool), hole = torch::ones({B, L}, torch::kBool);
  right[1].narrow(0, 15, L - 15).fill_(false);
  hole[0].narrow(0, 5, 3).fill_(false);
  auto reference = [&](const at::Tensor& qd, const at::Tensor& kd, const at::Tensor& vd, const at::Tensor& mask,
                       bool causal) {
    at::Tensor s = at::matmul(qd, kd.transpose(-1, -2)) / std::sqrt(static_cast<double>(d));
    at::Tensor allowed = mask.view({B, 1, 1, L}).expand({B, 1, L, L});
    if (causal) allowed = allowed & torch::ones({L, L}, torch::kBool).tril();
    return at::matmul(at::softmax(s.masked_fill(~allowed, -INFINITY), -1), vd);
  };
  for (const at::Tensor& mask : {right, hole}) {
    const bool is_right = mask.equal(right);
    for (bool causal : {false, true}) {
      SCOPED_TRACE(std::string(is_right ? "right padding" : "hole") + (causal ? ", causal" : ""));
      if (causal && !is_right && !exact_attention_stores_scores()) {
        EXPECT_THROW(exact_attention(q, k, v, mask, true), Error);
        continue;
      }
      at::Tensor qf = q.clone().requires_grad_(), kf = k.clone().requires_grad_(), vf = v.clone().requires_grad_();
      at::Tensor qd = q.to(at::kDouble).requires_grad_(), kd = k.to(at::kDouble).requires_grad_();
      at::Tensor vd = v.to(at::kDouble).requires_grad_();
      at::Tensor out = exact_attention(qf, kf, vf, mask, causal), ref = reference(qd, kd, vd, mask, causal);
      // Positions compared: every one, or the real queries under right padding.
      at::Tensor rows = (is_right ? mask : torch::ones({B, L}, torch::kBool)).view({B, 1, L, 1}).expand({B, H, L, d});
      EXPECT_LT(rel_error(out.to(at::kDouble).masked_select(rows), ref.masked_select(rows)), 1e-5);
      (out * G * rows).sum().backward();
      (ref * G.to(at::kDouble) * rows).sum().backward();
      EXPECT_LT(rel_error(qf.grad().to(at::kDouble), qd.grad()), 1e-5) << "dq";
      EXPECT_LT(rel_error(kf.grad().to(at::kDouble), kd.grad()), 1e-5) << "dk";
      EXPECT_LT(rel_error(vf.grad().to(at::kDouble), vd.grad()), 1e-5) << "dv";
    }
  }
}

TEST(SelfAttention, PaddingDoesNotChangeRealPositions) {
  const int64_t D = 32, L = 20, short_len = 12;
  for (auto kind : {AttentionKind::kExact, AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu}) {
    for (bool causal : {false, true}) {
      AttentionOptions o;
      o.kind = kind;
      o.d_model = D;
      o.heads = 4;
      o.features = 32;
      o.causal = causal;
      o.causal_chunk = 6;
      torch::manual_seed(0);
      SelfAttention attn(o);
      attn->eval();
      torch::NoGradGuard g;
      at::Tensor x = randn({2, L, D}, 41, at::kFloat);
      at::Tensor mask = torch::ones({2, L}, torch::kBool);
      mask[1].narrow(0, short_len, L - short_len).fill_(false);
      at::Tensor padded = attn(x, mask);
      at::Tensor alone = attn(x[1].narrow(0, 0, short_len).unsqueeze(0), torch::ones({1, short_len}, torch::kBool));
      EXPECT_LT((padded[1].narrow(0, 0, short_len) - alone[0]).abs().max().item<double>(), 1e-5)
          << attention_kind_name(kind) << " causal " << causal;
      // Garbage in the padding must not leak either.
      at::Tensor x2 = x.clone();
      x2[1].narrow(0, short_len, L - short_len).normal_().mul_(100);
      EXPECT_LT((attn(x2, mask)[1].narrow(0, 0, short_len) - alone[0]).abs().max().item<double>(), 1e-5);
      EXPECT_TRUE(torch::isfinite(padded).all().item<bool>());
    }
  }
}

TEST(SelfAttention, FavorRowsSumToOneAndMatchFeatures) {
  AttentionOptions o;
  o.d_model = 32;
  o.heads = 2;
  o.features = 64;
  SelfAttention attn(o);
  torch::NoGradGuard g;
  at::Tensor x = randn({1, 15, 32}, 51, at::kFloat);
  at::Tensor P = attn->attention_matrix(x);
  ASSERT_EQ(P.sizes(), (std::vector<int64_t>{1, 2, 15, 15}));
  EXPECT_LT((P.sum(-1) - 1).abs().max().item<double>(), 1e-5);
  EXPECT_GE(P.min().item<double>(), 0.0);
  // Output = out_proj(P V): the matrix is the one the forward pass applies.
  at::Tensor v = attn->v_proj(x).view({1, 15, 2, 16}).transpose(1, 2);
  at::Tensor via_matrix = attn->out_proj(at::matmul(P, v).transpose(1, 2).reshape({1, 15, 32}));
  EXPECT_LT((via_matrix - attn(x)).abs().max().item<double>(), 1e-5);
}

TEST(SelfAttention, FiniteForLargeInputsAndBfloat16) {
  for (auto kind : {AttentionKind::kExact, AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu}) {
    for (bool causal : {false, true}) {
      AttentionOptions o;
      o.kind = kind;
      o.d_model = 64;
      o.heads = 1;
      o.features = 64;
      o.causal = causal;
      SelfAttention attn(o);
      torch::NoGradGuard g;
      at::Tensor x = randn({2, 64, 64}, 61, at::kFloat);
      // Typical q = W x has entries ~0.6; scale inputs up to 10x that and beyond.
      for (double scale : {1.0, 10.0, 30.0}) {
        at::Tensor y = attn(x * scale);
        EXPECT_TRUE(torch::isfinite(y).all().item<bool>()) << attention_kind_name(kind) << " x" << scale;
      }
      attn->to(at::kBFloat16);
      at::Tensor yb = attn(x.to(at::kBFloat16) * 10);
      EXPECT_EQ(yb.scalar_type(), at::kBFloat16);
      EXPECT_TRUE(torch::isfinite(yb).all().item<bool>()) << attention_kind_name(kind) << " bf16";
    }
  }
}

TEST(SelfAttention, CudaMatchesCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (auto kind : {AttentionKind::kExact, AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu}) {
    for (bool causal : {false, true}) {
      AttentionOptions o;
      o.kind = kind;
      o.d_model = 64;
      o.heads = 4;
      o.features = 64;
      o.causal = causal;
      // The same weights in both: each module draws its Linear weights from the global generator.
      torch::manual_seed(70);
      SelfAttention cpu(o);
      torch::manual_seed(70);
      SelfAttention gpu(o);
      gpu->to(torch::kCUDA);
      at::Tensor x = randn({2, 300, 64}, 71, at::kFloat).requires_grad_();
      at::Tensor xg = x.detach().to(torch::kCUDA).requires_grad_();
      at::Tensor mask = torch::ones({2, 300}, torch::kBool);
      mask[1].narrow(0, 200, 100).fill_(false);
      at::Tensor y = cpu(x, mask), yg = gpu(xg, mask.to(torch::kCUDA));
      EXPECT_LT((yg.cpu() - y).abs().max().item<double>(), 1e-3) << attention_kind_name(kind) << " causal " << causal;
      y.sum().backward();
      yg.sum().backward();
      EXPECT_LT((xg.grad().cpu() - x.grad()).abs().max().item<double>(), 1e-3) << attention_kind_name(kind);
      if (kind == AttentionKind::kExact) continue;  // no projection to redraw
      // The projection was redrawn on the device in place.
      gpu->redraw(3);
      cpu->redraw(3);
      EXPECT_LT((gpu->projection().cpu() - cpu->projection()).abs().max().item<double>(), 1e-6);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Numerical safety of the FAVOR+ stabilizers, padding and mixed precision.

namespace {

// Float64 log-space reference of the FAVOR+ softmax estimate with the same W: weights
// w_ij = sum_r exp(a_ir + l_jr) / m evaluated as exp(logsumexp_r(a_ir + l_jr)), normalized per row in log
// space, so nothing under- or overflows. q, k [1, 1, L, d], v [1, 1, L, e]; key_mask [L] (true = real).
at::Tensor log_space_favor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& W,
                           bool causal, const at::Tensor& key_mask = {}) {
  at::Tensor a = softmax_logits(q.to(at::kDouble), W.to(at::kDouble))[0][0];  // [L, m]
  at::Tensor l = softmax_logits(k.to(at::kDouble), W.to(at::kDouble))[0][0];
  at::Tensor lw = at::logsumexp(a.unsqueeze(1) + l.unsqueeze(0), -1);        // [L, L]
  const int64_t L = lw.size(0);
  if (causal) lw = lw.masked_fill(~torch::ones({L, L}, torch::kBool).tril(), -INFINITY);
  if (key_mask.defined()) lw = lw.masked_fill(~key_mask.view({1, L}), -INFINITY);
  return at::matmul(at::softmax(lw, -1), v.to(at::kDouble)[0][0]).view({1, 1, L, v.size(-1)});
}

at::Tensor favor_softmax(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& W, bool causal,
                         int64_t chunk, const at::Tensor& key_mask = {}) {
  FeatureMaps f = softmax_features(q, k, W, key_mask, causal, chunk);
  return causal ? causal_linear_attention(f.q, f.k, v, chunk, f.chunk_log_scale) : linear_attention(f.q, f.k, v);
}

at::Tensor favor_relu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& W, bool causal,
                      int64_t chunk, const at::Tensor& key_mask = {}) {
  FeatureMaps f = relu_features(q, k, W, 1e-3, key_mask);
  return causal ? causal_linear_attention(f.q, f.k, v, chunk) : linear_attention(f.q, f.k, v);
}

}  // namespace

namespace {
// Keys x' = x d^-1/4 along row r of W reach the largest logit a key can have in feature r,
// w_r.k' - |k'|^2/2 = |w_r|^2/2 (at k' = w_r); keys of norm |k'| = 20 elsewhere sit ~100 nats or more below it.
at::Tensor key_at_feature_max(const at::Tensor& W, int64_t r, double alpha = 1.0) {
  const double d = static_cast<double>(W.size(1));
  return W[r].to(at::kFloat) * alpha * std::pow(d, 0.25);
}
at::Tensor far_keys(int64_t B, int64_t H, int64_t L, int64_t d, int64_t seed) {
  at::Tensor k = randn({B, H, L, d}, seed, at::kFloat);
  return k / k.norm(2, {-1}, true) * 20.0 * std::pow(static_cast<double>(d), 0.25);
}
double max_logit(const at::Tensor& k, const at::Tensor& W) { return softmax_logits(k, W).max().item<double>(); }
}  // namespace

TEST(FavorStabilizers, PaddingKeysFarAboveTheRealOnesGiveTheUnpaddedResult) {
  // Real keys whose logits all lie ~100 nats or more below a padding key's: shifted by the real keys'
  // maximum, the padding key's exp() overflows float32 (e^100), and inf * 0 would be NaN. Masking the
  // logits before exp must give the unpadded outputs and gradients. ReLU: padding keys of ~1e38, whose
  // features overflow likewise. Both directions.
  const int64_t L = 24, n = 15, d = 16, m = 32;
  at::Tensor W = orthogonal_gaussian_projection(m, d, RowNorms::kChi, 5).to(at::kFloat);
  at::Tensor mask = torch::ones({1, L}, torch::kBool);
  mask[0].narrow(0, n, L - n).fill_(false);
  for (int kind = 0; kind < 2; ++kind)
    for (bool causal : {false, true}) {
      auto attend = kind == 0 ? favor_softmax : favor_relu;
      at::Tensor q = randn({1, 1, L, d}, 81, at::kFloat), v = randn({1, 1, L, d}, 83, at::kFloat);
      at::Tensor k = kind == 0 ? far_keys(1, 1, L, d, 82) : randn({1, 1, L, d}, 82, at::kFloat);
      for (int64_t j = n; j < L; ++j)
        k[0][0][j] = kind == 0 ? key_at_feature_max(W, j % m) : randn({d}, 84 + j, at::kFloat) * 1e38;
      if (kind == 0) {  // the premise: padding logits > 88 nats above every real one
        ASSERT_GT(max_logit(k.narrow(2, n, L - n), W) - max_logit(k.narrow(2, 0, n), W), 90.0);
      } else {
        ASSERT_FALSE(torch::isfinite(at::matmul(k.narrow(2, n, L - n), W.t())).all().item<bool>());
      }
      q.requires_grad_();
      k.requires_grad_();
      v.requires_grad_();
      at::Tensor out = attend(q, k, v, W, causal, 4, mask);
      at::Tensor real = out[0][0].narrow(0, 0, n);
      ASSERT_TRUE(torch::isfinite(real).all().item<bool>()) << "kind " << kind << " causal " << causal;
      auto g = torch::autograd::grad({real.sum()}, {q, k, v});
      at::Tensor q1 = q.detach().narrow(2, 0, n).clone().requires_grad_(), k1 = k.detach().narrow(2, 0, n).clone().requires_grad_();
      at::Tensor v1 = v.detach().narrow(2, 0, n).clone().requires_grad_();
      at::Tensor alone = attend(q1, k1, v1, W, causal, 4, {});
      auto g1 = torch::autograd::grad({alone.sum()}, {q1, k1, v1});
      EXPECT_LT((real - alone[0][0]).abs().max().item<double>(), 1e-5) << "kind " << kind << " causal " << causal;
      for (size_t i = 0; i < 3; ++i) {
        ASSERT_TRUE(torch::isfinite(g[i]).all().item<bool>()) << "kind " << kind << " causal " << causal << " gradient " << i;
        EXPECT_LT((g[i].narrow(2, 0, n) - g1[i]).abs().max().item<double>(), 1e-5)
            << "kind " << kind << " causal " << causal << " gradient " << i;
        EXPECT_EQ(g[i].narrow(2, n, L - n).abs().max().item<double>(), 0.0) << "padding gradient " << i;
      }
    }
}

TEST(FavorStabilizers, LargeFutureKeyChangesNoEarlierOutput) {
  // Causal FAVOR+ with keys ~100 nats below the largest logit a key can reach. One later key is then set to
  // that largest logit in feature 0: a shift shared by all positions would push every earlier key out of
  // float range. A key in a later chunk must not touch earlier chunks at all (bit-identical); inside its own
  // chunk a key 30 nats above the rest changes the chunk's earlier outputs by < 1e-6 of their scale, i.e. by
  // rounding only (kernels.h: only an excess of ~87 nats could do more).
  const int64_t L = 48, d = 16, m = 64, chunk = 8;
  at::Tensor W = orthogonal_gaussian_projection(m, d, RowNorms::kChi, 9).to(at::kFloat);
  at::Tensor q = randn({1, 2, L, d}, 91, at::kFloat), k = far_keys(1, 2, L, d, 92);
  at::Tensor v = randn({1, 2, L, d}, 93, at::kFloat);
  const double base_max = max_logit(k, W);
  at::Tensor base = favor_softmax(q, k, v, W, true, chunk);
  ASSERT_TRUE(torch::isfinite(base).all().item<bool>());
  for (int64_t pos : {int64_t{37}, int64_t{21}}) {  // chunk 4 (positions 32..39) and chunk 2 (16..23)
    const int64_t chunk_start = pos / chunk * chunk;
    at::Tensor big = k.clone();
    big[0][0][pos] = key_at_feature_max(W, 0);
    ASSERT_GT(max_logit(big, W) - base_max, 95.0) << "premise: the key is ~100 nats above the rest";
    at::Tensor out = favor_softmax(q, big, v, W, true, chunk);
    EXPECT_TRUE(torch::equal(out.narrow(2, 0, chunk_start), base.narrow(2, 0, chunk_start))) << "key at " << pos;
    EXPECT_GT((out[0][0].narrow(0, pos, L - pos) - base[0][0].narrow(0, pos, L - pos)).abs().max().item<double>(), 1e-3)
        << "the key itself must matter from its position on";
    // 30 nats above the rest: alpha > 1 moves along w_0 past the maximum, where the logit falls again.
    double lo = 1.0, hi = 20.0;
    for (int it = 0; it < 60; ++it) {
      const double mid = 0.5 * (lo + hi);
      (max_logit(key_at_feature_max(W, 0, mid).view({1, 1, 1, d}), W) > base_max + 30.0 ? lo : hi) = mid;
    }
    at::Tensor moderate = k.clone();
    moderate[0][0][pos] = key_at_feature_max(W, 0, lo);
    at::Tensor out2 = favor_softmax(q, moderate, v, W, true, chunk);
    ASSERT_NEAR(max_logit(moderate, W) - base_max, 30.0, 0.5);
    // Relative to the outputs' scale (up to ~3 here; a float32 ulp there is 2.4e-7): rounding, nothing more.
    EXPECT_LT((out2.narrow(2, 0, pos) - base.narrow(2, 0, pos)).abs().max().item<double>() / base.abs().max().item<double>(),
              1e-6)
        << "key at " << pos;
  }
}

TEST(FavorStabilizers, WideLogitRangeMatchesFloat64LogSpaceReference) {
  // d = m = 64 (one orthogonal block, rows w_a, w_b orthogonal). Keys near k' = 1.7 w_a have logits ~+16 in
  // feature a and ~-92 in feature b; queries near q' = 2.2 w_b weigh feature b most, so every product they
  // have with a key lies ~109 nats below (their largest feature) + (the largest key logit). One shift shared
  // by all features (computed here for comparison) therefore leaves them nothing in float32 (e^-109 is below
  // even denormals): D at its floor and an output of 0. Per-feature shifts keep each query's largest
  // product at 1/m, and the result matches a float64 log-space evaluation of the same estimator.
  // Second case: random keys and queries with norms spread log-uniformly over 50x (logits spanning ~250 nats).
  const int64_t L = 40, d = 64, m = 64;
  at::Tensor W = orthogonal_gaussian_projection(m, d, RowNorms::kSqrtD, 12);
  const double root = std::pow(static_cast<double>(d), 0.25);  // x = x' d^1/4
  at::Tensor k = (W[3] * 1.7 + randn({L, d}, 104) * 0.05).view({1, 1, L, d}) * root;
  at::Tensor q = (W[7] * 2.2 + randn({L, d}, 105) * 0.05).view({1, 1, L, d}) * root;
  at::Tensor v = randn({1, 1, L, d}, 103);
  at::Tensor k2 = randn({1, 1, L, d}, 101), q2 = randn({1, 1, L, d}, 102);
  at::Tensor spread = at::exp(torch::linspace(std::log(0.4), std::log(20.0), L, torch::kDouble)).view({1, 1, L, 1}) * root;
  k2 = k2 / k2.norm(2, {-1}, true) * spread;
  q2 = q2 / q2.norm(2, {-1}, true) * spread.flip(2) * 0.5;
  for (int which = 0; which < 2; ++which) {
    const at::Tensor& kk = which == 0 ? k : k2;
    const at::Tensor& qq = which == 0 ? q : q2;
    at::Tensor l = softmax_logits(kk, W);
    for (bool causal : {false, true}) {
      at::Tensor ref = log_space_favor(qq, kk, v, W, causal);
      at::Tensor out = favor_softmax(qq.to(at::kFloat), kk.to(at::kFloat), v.to(at::kFloat), W.to(at::kFloat), causal, 8);
      ASSERT_TRUE(torch::isfinite(out).all().item<bool>());
      const double err = rel_error(out.to(at::kDouble), ref);
      // The same estimator with one shift for all keys and features (and per-row query shifts), in float32.
      at::Tensor a32 = softmax_logits(qq.to(at::kFloat), W.to(at::kFloat)), l32 = softmax_logits(kk.to(at::kFloat), W.to(at::kFloat));
      at::Tensor qf = at::exp(a32 - std::get<0>(a32.max(-1, true))), kf = at::exp(l32 - l32.max());
      at::Tensor global = causal ? causal_linear_attention(qf, kf, v.to(at::kFloat), 8) : linear_attention(qf, kf, v.to(at::kFloat));
      const double err_global = rel_error(global.to(at::kDouble), ref);
      std::printf("  case %d (key logits span %.0f nats), causal %d: relative error %.2e with per-feature shifts, %.2e "
                  "with one shift\n", which, (l.max() - l.min()).item<double>(), causal, err, err_global);
      EXPECT_LT(err, 1e-4) << "case " << which << " causal " << causal;
      if (which == 0) {
        EXPECT_GT(err_global, 0.5) << "premise: one shift loses these queries";
      }
    }
  }
}

TEST(FavorStabilizers, CausalChunkSizeDoesNotChangeTheResult) {
  // Chunk 1, the default 128 (>= L here) and L itself agree with chunk 5, outputs and gradients, both kernels.
  const int64_t L = 23, d = 8, m = 16;
  at::Tensor W = orthogonal_gaussian_projection(m, d, RowNorms::kChi, 13);
  at::Tensor G = randn({2, 2, L, d}, 114);
  for (int kind = 0; kind < 2; ++kind) {
    auto attend = kind == 0 ? favor_softmax : favor_relu;
    std::vector<std::vector<at::Tensor>> results;
    for (int64_t chunk : {int64_t{5}, int64_t{1}, int64_t{128}, L}) {
      at::Tensor q = randn({2, 2, L, d}, 111).requires_grad_(), k = randn({2, 2, L, d}, 112).requires_grad_();
      at::Tensor v = randn({2, 2, L, d}, 113).requires_grad_();
      at::Tensor out = attend(q, k, v, W, true, chunk, {});
      auto g = torch::autograd::grad({(out * G).sum()}, {q, k, v});
      results.push_back({out.detach(), g[0], g[1], g[2]});
    }
    for (size_t c = 1; c < results.size(); ++c)
      for (size_t i = 0; i < 4; ++i)
        EXPECT_LT(rel_error(results[c][i], results[0][i]), 1e-12) << "kind " << kind << " chunk case " << c << " tensor " << i;
  }
}

TEST(FavorStabilizers, WholePipelineGradientsMatchFiniteDifferences) {
  // Features (with their stabilizers), normalizer and linear attention, in double, against central
  // differences of the same function, for both kernels, bidirectional and causal (chunk 2 of L = 5).
  const int64_t L = 5, d = 4, m = 6;
  at::Tensor W = orthogonal_gaussian_projection(m, d, RowNorms::kChi, 17);
  at::Tensor G = randn({1, 1, L, d}, 124);
  for (int kind = 0; kind < 2; ++kind)
    for (bool causal : {false, true}) {
      auto attend = kind == 0 ? favor_softmax : favor_relu;
      auto loss = [&](const std::vector<at::Tensor>& in) { return (attend(in[0], in[1], in[2], W, causal, 2, {}) * G).sum(); };
      const double worst =
          performer::testing::worst_gradient_error(loss, {randn({1, 1, L, d}, 121), randn({1, 1, L, d}, 122), randn({1, 1, L, d}, 123)});
      EXPECT_LT(worst, 1e-6) << "kind " << kind << " causal " << causal;
    }
}

TEST(RandomFeatures, SoftmaxKernelEstimateIsUnbiased) {
  // Averaged over many draws of W, phi(q).phi(k) with the stabilizers undone (the unshifted logits of
  // softmax_logits) approaches exp(q.k / sqrt(d)), for i.i.d. rows and for orthogonal rows with chi(d) norms.
  // Tolerance: 5 standard errors of the mean over the draws.
  const int64_t d = 8, m = 8, draws = 4000;
  at::Tensor q = randn({1, 1, 1, d}, 131) * 0.6, k = randn({1, 1, 1, d}, 132) * 0.6;
  const double exact = std::exp((q * k).sum().item<double>() / std::sqrt(static_cast<double>(d)));
  for (int orthogonal = 0; orthogonal < 2; ++orthogonal) {
    std::vector<double> est;
    for (int64_t s = 0; s < draws; ++s) {
      at::Tensor W = orthogonal ? orthogonal_gaussian_projection(m, d, RowNorms::kChi, 1000 + static_cast<uint64_t>(s))
                                : gaussian_projection(m, d, 1000 + static_cast<uint64_t>(s));
      est.push_back((at::exp(softmax_logits(q, W)) * at::exp(softmax_logits(k, W))).sum().item<double>() /
                    static_cast<double>(m));
    }
    at::Tensor e = torch::tensor(est, torch::kDouble);
    const double mean = e.mean().item<double>(), se = e.std().item<double>() / std::sqrt(static_cast<double>(draws));
    std::printf("  %s: mean estimate %.5f, exact %.5f, standard error %.5f\n", orthogonal ? "orthogonal chi" : "iid",
                mean, exact, se);
    EXPECT_LT(std::abs(mean - exact), 5 * se) << (orthogonal ? "orthogonal" : "iid");
    EXPECT_LT(se / exact, 0.02);  // the test has the power to see a 10% bias
  }
}

namespace {
// Runs f with CPU bfloat16 autocast enabled (the CPU counterpart of CUDA's bf16 autocast).
template <class F>
at::Tensor under_cpu_bf16_autocast(F f) {
  const AutocastScope autocast(torch::kCPU, Precision::kBf16);
  return f();
}

// A 2-head FAVOR layer (d_model 128: d_head 64, where bf16 autocast gives the lean core bf16 products; m 64,
// causal chunk 16) for the mixed-precision tests.
SelfAttention favor_layer(AttentionKind kind, bool causal) {
  AttentionOptions o;
  o.kind = kind;
  o.d_model = 128;
  o.heads = 2;
  o.features = 64;
  o.causal = causal;
  o.causal_chunk = 16;
  return SelfAttention(o);
}
}  // namespace

TEST(SelfAttention, FavorCoreRunsInFloat32UnderBf16Autocast) {
  // Under autocast a matmul runs in bf16 whatever its inputs are; the FAVOR core's features, stabilizers
  // and normalizer must not. Causal (and stored-feature) cores stay float32 throughout: the float32 result
  // to rounding (relative error < 1e-6; bf16 anywhere would cost ~1e-3 or more). The bidirectional lean
  // core runs its large products on bf16 operands on purpose (model/lean_favor.h): under autocast it equals
  // the core asked for those products explicitly with autocast off, so nothing else changed. Logits W x'
  // of 8-45 are where bf16 rounding of W x' would cost 1-5% per feature, so the inputs are scaled up.
  for (auto kind : {AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu})
    for (bool causal : {false, true}) {
      SelfAttention attn = favor_layer(kind, causal);
      torch::NoGradGuard g;
      at::Tensor q = randn({2, 2, 50, 64}, 141, at::kFloat) * 3, k = randn({2, 2, 50, 64}, 142, at::kFloat) * 3;
      at::Tensor v = randn({2, 2, 50, 64}, 143, at::kFloat);
      at::Tensor ref = attn->favor(q, k, v, {});
      if (!causal) {
        LeanFavorOptions lean;
        lean.kernel = kind == AttentionKind::kFavorSoftmax ? FeatureKernel::kSoftmax : FeatureKernel::kRelu;
        lean.relu_eps = attn->options().relu_eps;
        lean.chunk = attn->options().favor_chunk;
        lean.products = at::kBFloat16;
        ref = lean_favor_attention(q, k, v, attn->projection(), {}, lean);
      }
      at::Tensor mixed = under_cpu_bf16_autocast([&] { return attn->favor(q, k, v, {}); });
      EXPECT_LT(rel_error(mixed.to(at::kDouble), ref.to(at::kDouble)), 1e-6) << attention_kind_name(kind) << " causal " << causal;
      // What the guard prevents: outside it, autocast runs the logits' matmul in bf16, visibly off.
      if (kind == AttentionKind::kFavorSoftmax && !causal) {
        at::Tensor rounded = under_cpu_bf16_autocast([&] { return softmax_logits(q, attn->projection()); });
        at::Tensor exact = softmax_logits(q, attn->projection());
        EXPECT_GT((rounded.to(at::kFloat) - exact).abs().max().item<double>(), 0.05);
      }
    }
}

TEST(SelfAttention, FavorUnderCudaBf16AutocastMatchesFloat32) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  for (auto kind : {AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu})
    for (bool causal : {false, true}) {
      SelfAttention attn = favor_layer(kind, causal);
      attn->to(torch::kCUDA);
      torch::NoGradGuard g;
      auto cuda = torch::TensorOptions().device(torch::kCUDA);
      at::Tensor q = randn({2, 2, 300, 64}, 151, at::kFloat).to(cuda) * 3, k = randn({2, 2, 300, 64}, 152, at::kFloat).to(cuda) * 3;
      at::Tensor v = randn({2, 2, 300, 64}, 153, at::kFloat).to(cuda);
      at::Tensor ref = attn->favor(q, k, v, {});
      at::Tensor mixed;
      {
        const AutocastScope autocast(torch::kCUDA, Precision::kBf16);
        mixed = attn->favor(q, k, v, {});
      }
      EXPECT_LT(rel_error(mixed.to(at::kDouble).cpu(), ref.to(at::kDouble).cpu()), 1e-2) << attention_kind_name(kind);
    }
#else
  GTEST_SKIP() << "bf16 autocast needs LibTorch >= 2.4";
#endif
}
