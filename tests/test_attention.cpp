// The attention math against naive references (double precision where it matters).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "model/attention.h"
#include "model/exact_attention.h"
#include "model/kernels.h"
#include "model/linear_attention.h"

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
      at::Tensor out = linear_attention(softmax_features_query(q, W), softmax_features_key(k, W, {}), v);
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
    at::Tensor qf = kind == 0 ? softmax_features_query(q, W) : relu_features(q, W, 1e-3, {});
    at::Tensor kf = kind == 0 ? softmax_features_key(k, W, {}) : relu_features(k, W, 1e-3, {});
    for (bool causal : {false, true}) {
      at::Tensor ref = explicit_feature_attention(qf, kf, v, causal);
      at::Tensor fast = causal ? causal_linear_attention(qf, kf, v, 8) : linear_attention(qf, kf, v);
      EXPECT_LT(rel_error(fast, ref), 1e-12) << "kind " << kind << " causal " << causal;
      // float32: within 1e-5 relative.
      at::Tensor fast32 = causal ? causal_linear_attention(qf.to(at::kFloat), kf.to(at::kFloat), v.to(at::kFloat), 8)
                                 : linear_attention(qf.to(at::kFloat), kf.to(at::kFloat), v.to(at::kFloat));
      EXPECT_LT(rel_error(fast32.to(at::kDouble), ref), 1e-5) << "float32, kind " << kind << " causal " << causal;
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
  at::Tensor q = randn({1, 1, L, m}, 21).abs().requires_grad_(), k = randn({1, 1, L, m}, 22).abs().requires_grad_();
  at::Tensor v = randn({1, 1, L, e}, 23).requires_grad_();
  at::Tensor G = randn({1, 1, L, e}, 24);
  auto loss = [&](const at::Tensor& a, const at::Tensor& b, const at::Tensor& c) {
    return (causal_linear_attention(a, b, c, 2) * G).sum();
  };
  auto g = torch::autograd::grad({loss(q, k, v)}, {q, k, v});
  std::vector<at::Tensor> inputs = {q.detach(), k.detach(), v.detach()};
  const double h = 1e-6;
  for (int which = 0; which < 3; ++which) {
    at::Tensor base = inputs[which];
    for (int64_t i = 0; i < base.numel(); ++i) {
      auto perturbed = [&](double delta) {
        std::vector<at::Tensor> in = {inputs[0].clone(), inputs[1].clone(), inputs[2].clone()};
        in[which].reshape(-1)[i] += delta;
        return loss(in[0], in[1], in[2]).item<double>();
      };
      double numeric = (perturbed(h) - perturbed(-h)) / (2 * h);
      EXPECT_NEAR(g[which].reshape(-1)[i].item<double>(), numeric, 1e-6) << "input " << which << " element " << i;
    }
  }
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
      SelfAttention cpu(o), gpu(o);
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
      // The projection was redrawn on the device in place.
      gpu->redraw(3);
      cpu->redraw(3);
      EXPECT_LT((gpu->projection().cpu() - cpu->projection()).abs().max().item<double>(), 1e-6);
    }
  }
}
