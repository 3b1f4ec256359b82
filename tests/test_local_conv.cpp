// model.local_kernel's depthwise convolution (model/local_conv.h): the float32 CPU loops against the tensor
// formula in double, forward and gradients; the tensor formula against finite differences and a naive sum;
// padding that never reaches residues; the encoder with the branch (checkpoint names, export refusal).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "interop/hf_esm.h"
#include "model/encoder.h"
#include "model/local_conv.h"
#include "test_gradcheck.h"

using namespace performer;

namespace {

struct Inputs {
  at::Tensor n, mask, w, b;
};

// [B 3, L 37, D 24]; rows of 37, 30 and 5 real positions (the rest padding, holding large values).
Inputs inputs(int64_t k, at::ScalarType type, uint64_t seed) {
  torch::manual_seed(seed);
  Inputs in;
  in.n = torch::randn({3, 37, 24}, torch::kDouble).to(type);
  in.mask = torch::ones({3, 37}, torch::kBool);
  in.mask[1].narrow(0, 30, 7).fill_(false);
  in.mask[2].narrow(0, 5, 32).fill_(false);
  in.n.masked_fill_(in.mask.logical_not().unsqueeze(-1), 1e3);
  in.w = torch::randn({24, k}, torch::kDouble).to(type);
  in.b = torch::randn({24}, torch::kDouble).to(type);
  return in;
}

// The sum written out element by element, in double.
at::Tensor naive(const Inputs& in) {
  const int64_t B = in.n.size(0), L = in.n.size(1), D = in.n.size(2), k = in.w.size(1), r = (k - 1) / 2;
  at::Tensor y = torch::zeros({B, L, D}, torch::kDouble);
  const at::Tensor n64 = in.n.to(torch::kDouble), w64 = in.w.to(torch::kDouble), b64 = in.b.to(torch::kDouble);
  auto n = n64.accessor<double, 3>();
  auto m = in.mask.accessor<bool, 2>();
  auto w = w64.accessor<double, 2>();
  auto b = b64.accessor<double, 1>();
  auto out = y.accessor<double, 3>();
  for (int64_t s = 0; s < B; ++s)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t c = 0; c < D; ++c) {
        double v = b[c];
        for (int64_t o = 0; o < k; ++o) {
          const int64_t j = i + o - r;
          if (j >= 0 && j < L && m[s][j]) v += w[c][o] * n[s][j][c];
        }
        out[s][i][c] = v;
      }
  return y;
}

double max_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Output and the gradients of sum(y * probe) with respect to n, w, b.
std::vector<at::Tensor> run(const Inputs& in, bool loops, const at::Tensor& probe) {
  at::Tensor n = in.n.clone().requires_grad_(), w = in.w.clone().requires_grad_(), b = in.b.clone().requires_grad_();
  const at::Tensor y = loops ? local_conv(n, in.mask, w, b) : local_conv_reference(n, in.mask, w, b);
  const auto g = torch::autograd::grad({(y * probe.to(y.scalar_type())).sum()}, {n, w, b});
  return {y.detach(), g[0], g[1], g[2]};
}

}  // namespace

TEST(LocalConv, TensorFormulaMatchesANaiveSumAndFiniteDifferences) {
  for (int64_t k : {1, 3, 7}) {
    SCOPED_TRACE("k " + std::to_string(k));
    const Inputs in = inputs(k, torch::kDouble, 3 + k);
    EXPECT_LT(max_error(local_conv_reference(in.n, in.mask, in.w, in.b), naive(in)), 1e-12);
    // Gradients on a smaller problem (central differences, step 1e-6, in double).
    const at::Tensor n = in.n.narrow(1, 0, 9).narrow(2, 0, 4), w = in.w.narrow(0, 0, 4), b = in.b.narrow(0, 0, 4);
    const at::Tensor mask = in.mask.narrow(1, 0, 9);
    const at::Tensor probe = torch::randn({3, 9, 4}, torch::kDouble);
    const double worst = performer::testing::worst_gradient_error(
        [&](const std::vector<at::Tensor>& x) { return (local_conv_reference(x[0], mask, x[1], x[2]) * probe).sum(); },
        {n, w, b});
    EXPECT_LT(worst, 1e-7);
  }
}

TEST(LocalConv, Float32LoopsMatchTheFormulaInDoubleForwardAndGradients) {
  // The bound: 4x the tensor formula's own measured float32 distance from double (forward and each
  // gradient), plus 1e-12 so that an exact-zero noise cannot fail it.
  for (int64_t k : {1, 3, 7, 15}) {
    SCOPED_TRACE("k " + std::to_string(k));
    const Inputs in64 = inputs(k, torch::kDouble, 11 + k), in32 = inputs(k, torch::kFloat, 11 + k);
    const at::Tensor probe = torch::randn({3, 37, 24}, torch::kDouble);
    const auto exact = run(in64, false, probe);
    const auto formula = run(in32, false, probe);
    const auto loops = run(in32, true, probe);
    const char* what[] = {"output", "gradient of n", "gradient of w", "gradient of b"};
    for (size_t i = 0; i < exact.size(); ++i) {
      const double noise = max_error(formula[i], exact[i]);
      EXPECT_LE(max_error(loops[i], exact[i]), 4 * noise + 1e-12) << what[i] << ": float32 noise " << noise;
    }
    // Padding: no gradient flows to it (it is read as 0).
    EXPECT_EQ(loops[1].masked_select(in32.mask.logical_not().unsqueeze(-1)).abs().max().item<float>(), 0.0f);
  }
}

TEST(LocalConv, PaddingNeverReachesResidues) {
  const Inputs in = inputs(7, torch::kFloat, 5);
  Inputs other = in;
  other.n = in.n.masked_fill(in.mask.logical_not().unsqueeze(-1), -7.5);
  const at::Tensor a = local_conv(in.n, in.mask, in.w, in.b), b = local_conv(other.n, other.mask, other.w, other.b);
  const at::Tensor real = in.mask.unsqueeze(-1).expand_as(a);
  EXPECT_TRUE(torch::equal(a.masked_select(real), b.masked_select(real)));
}

TEST(LocalConv, EncoderCarriesTheBranchUnderStableNamesAndRefusesExportToEsm) {
  EncoderConfig c;
  c.kind = AttentionKind::kFavorRelu;
  c.relu_projection = false;
  c.layers = 2, c.heads = 2, c.d_model = 16, c.d_ff = 32, c.max_len = 64, c.dropout = 0;
  c.positions = PositionKind::kRotary;
  c.lm_head = LmHead::kEsm;
  EXPECT_EQ(hf_export_blocker(c), "");
  const int64_t without = Encoder(c)->num_parameters();
  c.local_kernel = 5;
  Encoder model(c);
  EXPECT_EQ(model->num_parameters(), without + 2 * (16 * 5 + 16));
  const auto params = model->named_parameters();
  ASSERT_TRUE(params.contains("layers.1.local_weight"));
  EXPECT_EQ(params["layers.1.local_weight"].sizes(), (std::vector<int64_t>{16, 5}));
  EXPECT_TRUE(params.contains("layers.1.local_bias"));
  EXPECT_NE(hf_export_blocker(c).find("model.local_kernel is 5"), std::string::npos);
  // A row scores the same alone as beside a longer one (its padding reaches neither attention nor the branch).
  model->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor tokens = torch::randint(4, 24, {2, 40}, torch::kLong);
  at::Tensor mask = torch::ones({2, 40}, torch::kBool);
  mask[1].narrow(0, 25, 15).fill_(false);
  const at::Tensor both = model->forward(tokens, mask);
  const at::Tensor alone = model->forward(tokens[1].narrow(0, 0, 25).unsqueeze(0));
  EXPECT_LT(max_error(both[1].narrow(0, 0, 25), alone[0]), 1e-4);
  c.local_kernel = 4;
  EXPECT_THROW(c.validate(), std::exception);
  c.local_kernel = 3;
  c.causal = true;  // the centred window reads later positions
  EXPECT_THROW(c.validate(), std::exception);
}

TEST(LocalConv, Bf16InputsAreWidenedAndSummedInFloat32) {
  // CPU autocast can hand the branch a bf16 LayerNorm output: the loops widen it, so the result equals the
  // double formula on the same (bf16-rounded) values to float32 noise, not to bf16 rounding.
  Inputs in = inputs(7, torch::kFloat, 9);
  const at::Tensor n16 = in.n.to(torch::kBFloat16).requires_grad_();
  const at::Tensor y = local_conv(n16, in.mask, in.w, in.b);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  Inputs exact = in;
  exact.n = n16.detach().to(torch::kDouble), exact.w = in.w.to(torch::kDouble), exact.b = in.b.to(torch::kDouble);
  const at::Tensor ref = naive(exact);
  const double scale = ref.abs().max().item<double>();
  EXPECT_LT(max_error(y, ref), 1e-5 * scale);
  y.sum().backward();
  EXPECT_EQ(n16.grad().scalar_type(), torch::kBFloat16);
}
