// The run's precision (util/precision.h): names, the autocast scope, the measured choice.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "util/error.h"
#include "util/precision.h"

namespace {
// The message of the Error `f` throws ("" when it throws none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const performer::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

using namespace performer;

TEST(Precision, NamesParseBothWaysAndOthersAreRefusedNamingTheOption) {
  for (const std::string& n : precision_names()) EXPECT_EQ(precision_name(parse_precision(n)), n);
  EXPECT_EQ(parse_precision("auto"), Precision::kAuto);
  EXPECT_EQ(error_of([] { parse_precision("fp16", "--precision"); }), "--precision 'fp16': expected fp32, bf16 or auto");
}

TEST(Precision, AutocastScopeTurnsBf16OnForItsLifetimeAndRestoresTheState) {
  const at::Tensor a = torch::randn({8, 8}), b = torch::randn({8, 8});
  EXPECT_FALSE(active_autocast_dtype(c10::DeviceType::CPU).has_value());
  {
    const AutocastScope fp32(torch::kCPU, Precision::kFp32);  // does nothing
    EXPECT_EQ(at::mm(a, b).scalar_type(), at::kFloat);
  }
  {
    const AutocastScope on(torch::kCPU, Precision::kBf16);
    EXPECT_EQ(active_autocast_dtype(c10::DeviceType::CPU), at::kBFloat16);
    EXPECT_EQ(at::mm(a, b).scalar_type(), at::kBFloat16);
    {
      const AutocastScope nested(torch::kCPU, Precision::kBf16);
      EXPECT_EQ(at::mm(a, b).scalar_type(), at::kBFloat16);
    }
    EXPECT_EQ(at::mm(a, b).scalar_type(), at::kBFloat16) << "the inner scope restored the outer one's state";
  }
  EXPECT_EQ(at::mm(a, b).scalar_type(), at::kFloat);
  EXPECT_FALSE(active_autocast_dtype(c10::DeviceType::CPU).has_value());
  EXPECT_NE(error_of([] { const AutocastScope s(torch::kCPU, Precision::kAuto); }).find("resolved precision"),
            std::string::npos);
}

TEST(Precision, ChoiceFollowsTheMeasuredProbe) {
  // fp32 asked for: no probe, no line.
  const PrecisionChoice f = choose_precision(Precision::kFp32, torch::kCPU);
  EXPECT_EQ(f.precision, Precision::kFp32);
  EXPECT_TRUE(f.note.empty());
  EXPECT_EQ(f.probe.fp32_block, 0.0);
  // auto: bf16 exactly when the probe measured at least kAutoBf16Speedup; the line gives the figures.
  const PrecisionChoice a = choose_precision(Precision::kAuto, torch::kCPU);
  EXPECT_GT(a.probe.fp32_block, 0.0);
  EXPECT_GT(a.probe.bf16_block, 0.0);
  EXPECT_GT(a.probe.fp32_gflops, 0.0);
  EXPECT_GT(a.probe.bf16_gflops, 0.0);
  EXPECT_EQ(a.precision == Precision::kBf16, a.probe.speedup() >= kAutoBf16Speedup && a.probe.bf16_sums_in_float32);
  EXPECT_EQ(a.probe.bf16_sums_in_float32, bf16_gemm_accumulates_in_float32(torch::kCPU));
  EXPECT_NE(a.note.find("precision auto: " + precision_name(a.precision)), std::string::npos) << a.note;
  EXPECT_NE(a.note.find("GFLOP/s"), std::string::npos) << a.note;
  std::printf("  %s\n", a.note.c_str());
  // bf16 asked for: bf16 whatever was measured, a warning where it measured slower.
  const PrecisionChoice b = choose_precision(Precision::kBf16, torch::kCPU);
  EXPECT_EQ(b.precision, Precision::kBf16);
  EXPECT_EQ(b.warning, b.probe.speedup() < 1.0 || !b.probe.bf16_sums_in_float32);
  EXPECT_EQ(b.note.find("sum in bf16") != std::string::npos, !b.probe.bf16_sums_in_float32) << b.note;
}

TEST(Precision, Bf16AccumulationProbeAgreesWithALongerSum) {
  // 4,096 products 1 x (1 + 2^-7) in the probe's layouts: summed in float32 exactly 4,128 in each; summed in
  // bf16 (Debian's LibTorch 1.13 without AVX-512) off in some. The probe (1,024 of them) must tell the same.
  torch::NoGradGuard g;
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16);
  const double term = 1.0 + 1.0 / 128;
  const at::Tensor a = torch::ones({1, 4, 4096}, bf16), b = torch::full({1, 4096, 4}, term, bf16);
  const at::Tensor at_ = torch::ones({1, 4096, 4}, bf16).transpose(1, 2), bt = torch::full({1, 4, 4096}, term, bf16).transpose(1, 2);
  bool exact = true;
  for (const at::Tensor& r : {at::bmm(a, b), at::bmm(at_, b), at::bmm(a, bt), at::bmm(at_, bt), at::mm(a[0], b[0])}) {
    const at::Tensor f = r.to(torch::kFloat);
    exact = exact && f.min().item<float>() == 4128.0f && f.max().item<float>() == 4128.0f;
  }
  std::printf("  bf16 GEMMs sum in %s; 4,096 products exact: %s\n",
              bf16_gemm_accumulates_in_float32(torch::kCPU) ? "float32" : "bf16", exact ? "yes" : "no");
  EXPECT_EQ(exact, bf16_gemm_accumulates_in_float32(torch::kCPU));
}
