// Rotary positions (model/rotary.h): the one-pass CPU rows (model/rotary_rows.h) against the formula in
// double with angles of its own, forward and gradient, float32 and bf16, on the strided views the attention
// projections give.
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "model/rotary.h"

using namespace performer;

namespace {

// [B, H, L, d] as the projections give it: a transposed view of [B, L, H, d].
at::Tensor strided_heads(int64_t B, int64_t H, int64_t L, int64_t d, at::ScalarType type, uint64_t seed) {
  torch::manual_seed(seed);
  return (torch::randn({B, L, H, d}, torch::kDouble) * 3).to(type).transpose(1, 2);
}

// The formula in double, angles p * 10000^(-2i/d) computed in double here.
at::Tensor reference(const at::Tensor& x) {
  const int64_t L = x.size(2), d = x.size(3), h = d / 2;
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  at::Tensor inv = torch::pow(10000.0, -torch::arange(0, d, 2, opts) / static_cast<double>(d));
  at::Tensor ang = torch::outer(torch::arange(L, opts), inv);
  at::Tensor xd = x.to(torch::kDouble), c = ang.cos(), s = ang.sin();
  at::Tensor x1 = xd.narrow(-1, 0, h), x2 = xd.narrow(-1, h, h);
  return torch::cat({x1 * c - x2 * s, x1 * s + x2 * c}, -1);
}

// The tensor formula in x's own type with float32 angles cast to it (what apply_rotary computed before the
// one-pass rows): the floating-point noise this type gives, measured.
at::Tensor tensor_formula(const at::Tensor& x) {
  const int64_t L = x.size(2), d = x.size(3), h = d / 2;
  auto opts = torch::TensorOptions().dtype(torch::kFloat);
  at::Tensor inv = torch::pow(10000.0, -torch::arange(0, d, 2, opts) / static_cast<double>(d));
  at::Tensor ang = torch::outer(torch::arange(L, opts), inv);
  at::Tensor c = ang.cos().to(x.scalar_type()), s = ang.sin().to(x.scalar_type());
  at::Tensor x1 = x.narrow(-1, 0, h), x2 = x.narrow(-1, h, h);
  return torch::cat({x1 * c - x2 * s, x1 * s + x2 * c}, -1);
}

double max_error(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(torch::kDouble) - b).abs().max().item<double>();
}

}  // namespace

TEST(Rotary, RowsMatchTheFormulaInDoubleForwardAndGradient) {
  // L 300 (angles up to 299 rad: their float32 rounding is the largest error), d 16 and 6, 3 sequences x 5
  // heads. The bound is 2x the tensor formula's own measured distance from double, in the same type, plus
  // 1e-12 so an exact-zero noise cannot fail it; bf16 also checks one rounding of the output's magnitude.
  for (int64_t d : {16, 6}) {
    for (auto type : {torch::kFloat, torch::kBFloat16}) {
      SCOPED_TRACE(std::string(c10::toString(type)) + " d " + std::to_string(d));
      const at::Tensor x = strided_heads(3, 5, 300, d, type, 7 + d);
      ASSERT_FALSE(x.is_contiguous());
      const at::Tensor ref = reference(x);
      const double noise = max_error(tensor_formula(x), ref);
      const at::Tensor xg = x.detach().requires_grad_(true);
      const at::Tensor out = apply_rotary(xg);
      EXPECT_EQ(out.scalar_type(), type);
      EXPECT_EQ(out.sizes(), x.sizes());
      const double err = max_error(out, ref);
      EXPECT_LE(err, 2 * noise + 1e-12) << "noise " << noise;
      if (type == torch::kBFloat16) {
        EXPECT_LE(err, ref.abs().max().item<double>() * std::ldexp(1.0, -8));
      }

      // Gradient of sum(out * g): the rotation's transpose applied to g, against autograd through the double
      // formula; g strided too.
      const at::Tensor g = strided_heads(3, 5, 300, d, type, 99 + d);
      out.backward(g);
      const at::Tensor xd = x.to(torch::kDouble).detach().requires_grad_(true);
      reference(xd).backward(g.to(torch::kDouble));
      const at::Tensor xt = x.detach().requires_grad_(true);
      tensor_formula(xt).backward(g);
      const double grad_noise = max_error(xt.grad(), xd.grad());
      EXPECT_LE(max_error(xg.grad(), xd.grad()), 2 * grad_noise + 1e-12) << "noise " << grad_noise;
      EXPECT_EQ(xg.grad().scalar_type(), type);
      std::printf("  rotary %s d %ld: forward error %.2e (tensor formula %.2e), gradient %.2e (%.2e)\n",
                  c10::toString(type), static_cast<long>(d), err, noise, max_error(xg.grad(), xd.grad()), grad_noise);
    }
  }
}

TEST(Rotary, NanStaysInItsPairAndDoubleTakesTheFormula) {
  at::Tensor x = strided_heads(1, 2, 9, 8, torch::kBFloat16, 3).contiguous();
  x[0][1][4][2] = std::nan("");
  const at::Tensor out = apply_rotary(x);
  const at::Tensor nan = out.isnan();
  EXPECT_EQ(nan.sum().item<int64_t>(), 2);  // the pair (2, 6) at that position only
  EXPECT_TRUE(nan[0][1][4][2].item<bool>() && nan[0][1][4][6].item<bool>());
  // Double is not taken by the rows: the formula, equal to the reference up to float32 angles.
  const at::Tensor xd = strided_heads(2, 3, 40, 8, torch::kDouble, 5);
  EXPECT_LT(max_error(apply_rotary(xd), reference(xd)), 1e-5);
}

TEST(Rotary, TablesMadeUnderInferenceModeServeALaterBackward) {
  // The cos/sin tables are kept between calls; one first made under inference mode (embed) must still be
  // usable by a training step. d 10 and L 77 are used by no other test, so the table is new here.
  {
    c10::InferenceMode inference;
    apply_rotary(strided_heads(1, 1, 77, 10, torch::kFloat, 1));
  }
  const at::Tensor x = strided_heads(1, 2, 77, 10, torch::kFloat, 2).detach().requires_grad_(true);
  ASSERT_NO_THROW(apply_rotary(x).sum().backward());
  // The gradient of the sum (an expanded, zero-stride gradient) against the double formula's.
  const at::Tensor xd = x.detach().to(torch::kDouble).requires_grad_(true);
  reference(xd).sum().backward();
  const at::Tensor xt = x.detach().requires_grad_(true);
  tensor_formula(xt).sum().backward();
  EXPECT_LE(max_error(x.grad(), xd.grad()), 2 * max_error(xt.grad(), xd.grad()) + 1e-12);
  // A shorter L reuses the first rows: the same values as a fresh computation of the formula.
  const at::Tensor short_x = strided_heads(1, 2, 30, 10, torch::kFloat, 3);
  EXPECT_LE(max_error(apply_rotary(short_x), reference(short_x)),
            2 * max_error(tensor_formula(short_x), reference(short_x)) + 1e-12);
}

TEST(Rotary, DoubleBackwardDifferentiatesTheGradient) {
  // gx = R^T g is linear in g, so with create_graph the gradient of sum(gx * w) with respect to g is R w:
  // the rotation of w, checked against the double formula. Empty batches pass through.
  const at::Tensor x = strided_heads(2, 3, 50, 8, torch::kFloat, 11).detach().requires_grad_(true);
  const at::Tensor g = strided_heads(2, 3, 50, 8, torch::kFloat, 12).detach().requires_grad_(true);
  const at::Tensor w = strided_heads(2, 3, 50, 8, torch::kFloat, 13);
  const at::Tensor gx = torch::autograd::grad({apply_rotary(x)}, {x}, {g}, true, true)[0];
  ASSERT_TRUE(gx.requires_grad());
  (gx * w).sum().backward();
  EXPECT_LE(max_error(g.grad(), reference(w)), 2 * max_error(tensor_formula(w), reference(w)) + 1e-12);
  const at::Tensor empty = torch::zeros({0, 3, 50, 8});
  EXPECT_EQ(apply_rotary(empty).sizes(), empty.sizes());
}
