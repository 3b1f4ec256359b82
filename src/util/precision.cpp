#include "util/precision.h"

#include <ATen/autocast_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "util/device.h"
#include "util/error.h"
#include "util/log.h"
#include "util/names.h"

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define PERFORMER_AUTOCAST_BY_DEVICE 1  // one autocast API for every device type
#endif

namespace performer {

#if TORCH_VERSION_MAJOR < 2
namespace {
// Debian's LibTorch 1.13 takes bf16 matrix products to oneDNN 2.6, whose AMX kernels stopped the quickstart
// with SIGILL on a Xeon with AMX (an AMX tile instruction, tdpbf16ps, in a worker thread, after ~100 steps,
// twice; 2026-12-02). oneDNN is capped at AVX512_CORE_BF16 before its first use (it reads this variable
// then), unless the user chose a cap. The bf16 probe then measures what bf16 is worth without AMX.
const bool kOnednnCapped = [] {
  if (std::getenv("ONEDNN_MAX_CPU_ISA") != nullptr || std::getenv("DNNL_MAX_CPU_ISA") != nullptr) return false;
  return ::setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16", 0) == 0;
}();
}  // namespace
#endif

const std::vector<std::string>& precision_names() {
  static const std::vector<std::string> names{"fp32", "bf16", "auto"};
  return names;
}

Precision parse_precision(const std::string& s, const std::string& what) {
  return parse_name<Precision>(s, precision_names(), what);
}

std::string precision_name(Precision p) { return name_of(p, precision_names()); }

namespace {

// LibTorch's autocast state for one device type, across its two APIs (2.4+: by device type; 1.13: CPU
// and CUDA functions of their own, and no bf16 autocast on CUDA that this project relies on).
bool autocast_supported(c10::DeviceType type) {
#ifdef PERFORMER_AUTOCAST_BY_DEVICE
  (void)type;
  return true;
#else
  return type == c10::DeviceType::CPU;
#endif
}

bool autocast_enabled(c10::DeviceType type) {
#ifdef PERFORMER_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(type);
#else
  return type == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}

c10::ScalarType autocast_dtype(c10::DeviceType type) {
#ifdef PERFORMER_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(type);
#else
  return type == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}

void set_autocast(c10::DeviceType type, bool enabled, c10::ScalarType dtype) {
#ifdef PERFORMER_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(type, enabled);
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (type != c10::DeviceType::CPU) throw Error("bf16 autocast on CUDA needs LibTorch >= 2.4 (this build has " TORCH_VERSION ")");
  at::autocast::set_cpu_enabled(enabled);
  at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

}  // namespace

namespace {

// The fastest of repeated calls of f (at least 3, and until `seconds` have passed), after one warm-up call
// (thread pool started, kernels chosen, pages touched).
template <class F>
double best_seconds(F f, double seconds) {
  using Clock = std::chrono::steady_clock;
  f();
  double best = 1e30;
  const auto start = Clock::now();
  for (int rep = 0; rep < 3 || std::chrono::duration<double>(Clock::now() - start).count() < seconds; ++rep) {
    const auto t = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t).count());
  }
  return best;
}

}  // namespace

double measure_gemm_gflops(const c10::Device& device, c10::ScalarType dtype, int64_t n, double seconds) {
  torch::NoGradGuard no_grad;
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);  // the dtype asked for
  const auto opts = torch::TensorOptions().device(device).dtype(dtype);
  const at::Tensor a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts);
  at::Tensor c = torch::empty({n, n}, opts);
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  const double best = best_seconds(
      [&] {
        at::mm_out(c, a, b);
        (void)c[0][0].item<double>();  // waits for the device
      },
      seconds);
  return best > 0 ? flops / best / 1e9 : 0.0;
}

double measure_block_seconds(const c10::Device& device, bool bf16, int64_t tokens, int64_t d, double seconds) {
  const auto opts = torch::TensorOptions().device(device).dtype(at::kFloat);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const at::Tensor x = torch::randn({tokens, d}, opts).requires_grad_();
  const at::Tensor w1 = (torch::randn({4 * d, d}, opts) * scale).requires_grad_();
  const at::Tensor w2 = (torch::randn({d, 4 * d}, opts) * (0.5 * scale)).requires_grad_();
  const c10::Device where = device;
  auto step = [&] {
    at::Tensor y;
    {
      const AutocastScope autocast(where, bf16 ? Precision::kBf16 : Precision::kFp32);
      y = at::linear(at::gelu(at::linear(x, w1)), w2);
    }
    (x + y).to(at::kFloat).square().sum().backward();  // a residual sum in float32, as the encoder has
    return w1.grad()[0][0].item<double>();            // waits for the device
  };
  return best_seconds(step, seconds);
}

namespace {

bool measure_bf16_accumulation(const c10::Device& device) {
  // 1 x (1 + 2^-7), K times: every term and the sum K + K/128 are exact in bf16 (8 significant bits), but a
  // partial sum of k terms is not unless k is a power of two, so any bf16 running sum (one or several
  // accumulators, blocked or split) misses the exact result, which float32 sums reach.
  constexpr int64_t K = 1024, n = 8;
  constexpr double kTerm = 1.0 + 1.0 / 128;
  torch::NoGradGuard no_grad;
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);  // bf16 as given
  const auto opts = torch::TensorOptions().device(device).dtype(at::kBFloat16);
  const at::Tensor a = torch::ones({1, n, K}, opts), b = torch::full({1, K, n}, kTerm, opts);
  const at::Tensor at_ = torch::ones({1, K, n}, opts).transpose(1, 2), bt = torch::full({1, n, K}, kTerm, opts).transpose(1, 2);
  const float exact = static_cast<float>(K * kTerm);
  for (const at::Tensor& r : {at::bmm(a, b), at::bmm(at_, b), at::bmm(a, bt), at::bmm(at_, bt), at::mm(a[0], b[0])}) {
    const at::Tensor f = r.to(at::kFloat);
    if (f.min().item<float>() != exact || f.max().item<float>() != exact) return false;
  }
  return true;
}

}  // namespace

bool bf16_gemm_accumulates_in_float32(const c10::Device& device) {
  static const bool cpu = measure_bf16_accumulation(c10::Device(c10::DeviceType::CPU));
  if (device.is_cpu()) return cpu;
  static const bool accelerator = measure_bf16_accumulation(device);  // one accelerator type per process
  return accelerator;
}

std::string PrecisionProbe::describe() const {
  return fmt::format("feed-forward block fwd+bwd {:.2f}x as fast in bf16 ({:.1f} vs {:.1f} ms fp32, {} tokens x d {}); "
                     "GEMM bf16 {:.0f}, fp32 {:.0f} GFLOP/s (n {})",
                     speedup(), 1e3 * bf16_block, 1e3 * fp32_block, tokens, d, bf16_gflops, fp32_gflops, n) +
         (bf16_sums_in_float32 ? "" : "; this LibTorch's bf16 GEMMs sum in bf16, not float32");
}

PrecisionProbe probe_precision(const c10::Device& device) {
  PrecisionProbe p;
  // A GPU needs more work per call than a CPU to reach its peak.
  p.n = device.is_cuda() ? 4096 : 1024;
  p.tokens = device.is_cuda() ? 32768 : 2048;
  p.d = device.is_cuda() ? 512 : 128;
  p.fp32_gflops = measure_gemm_gflops(device, at::kFloat, p.n, 0.1);
  p.bf16_gflops = measure_gemm_gflops(device, at::kBFloat16, p.n, 0.1);
  p.fp32_block = measure_block_seconds(device, false, p.tokens, p.d, 0.15);
  p.bf16_block = measure_block_seconds(device, true, p.tokens, p.d, 0.15);
  p.bf16_sums_in_float32 = bf16_gemm_accumulates_in_float32(device);
  return p;
}

PrecisionChoice choose_precision(Precision requested, const c10::Device& device) {
  PrecisionChoice c;
  if (requested == Precision::kFp32) return c;
  std::string where = device_name(device) + " (LibTorch " TORCH_VERSION ")";
#if TORCH_VERSION_MAJOR < 2
  if (kOnednnCapped && device.is_cpu())
    where += " with oneDNN capped at AVX512_CORE_BF16 (oneDNN 2.6's AMX kernels crash)";
#endif
  if (!autocast_supported(device.type())) {
    if (requested == Precision::kBf16)
      throw Error("runtime.precision bf16 on " + where + ": bf16 autocast on CUDA needs LibTorch >= 2.4");
    c.note = "precision auto: fp32 (bf16 autocast on CUDA needs LibTorch >= 2.4)";
    return c;
  }
  c.probe = probe_precision(device);
  const std::string figures = c.probe.describe() + " on " + where;
  if (requested == Precision::kBf16) {
    c.precision = Precision::kBf16;
    const bool slower = c.probe.speedup() < 1.0, inexact = !c.probe.bf16_sums_in_float32;
    c.warning = slower || inexact;
    const std::string why = slower && inexact ? "is slower than fp32 and less exact here"
                            : slower          ? "is slower than fp32 here"
                                              : "sums its products in bf16 here";
    c.note = c.warning ? "bf16 was asked for but " + why + ": " + figures + "; running in bf16 anyway " +
                             (inexact ? "(the linear layers' products then sum in bf16, FAVOR's in float32; "
                                        "runtime.precision fp32 or auto avoids it)"
                                      : "(runtime.precision fp32 or auto would be faster)")
                       : "precision bf16: " + figures;
    return c;
  }
  c.precision = c.probe.speedup() >= kAutoBf16Speedup && c.probe.bf16_sums_in_float32 ? Precision::kBf16
                                                                                       : Precision::kFp32;
  c.note = fmt::format("precision auto: {} ({}; bf16 from {:.1f}x on)", precision_name(c.precision), figures,
                       kAutoBf16Speedup);
  return c;
}

Precision resolve_precision(Precision requested, const c10::Device& device) {
  const PrecisionChoice c = choose_precision(requested, device);
  if (c.warning)
    warn(c.note);
  else if (!c.note.empty())
    std::fprintf(stderr, "%s\n", c.note.c_str());
  return c.precision;
}

AutocastScope::AutocastScope(const c10::Device& device, Precision precision) {
  if (precision == Precision::kFp32) return;
  if (precision != Precision::kBf16) throw Error("internal: AutocastScope needs a resolved precision (fp32 or bf16)");
  type_ = device.type();
  if (!autocast_supported(type_)) throw Error("bf16 autocast on CUDA needs LibTorch >= 2.4 (this build has " TORCH_VERSION ")");
  was_enabled_ = autocast_enabled(type_);
  was_dtype_ = autocast_dtype(type_);
  set_autocast(type_, true, at::kBFloat16);
  active_ = true;
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  set_autocast(type_, was_enabled_, was_dtype_);
  if (!was_enabled_) at::autocast::clear_cache();
}

std::optional<c10::ScalarType> active_autocast_dtype(c10::DeviceType type) {
  if (!autocast_supported(type) || !autocast_enabled(type)) return std::nullopt;
  const auto key = type == c10::DeviceType::CUDA ? c10::DispatchKey::AutocastCUDA : c10::DispatchKey::AutocastCPU;
  if (c10::impl::tls_is_dispatch_key_excluded(key)) return std::nullopt;
  return autocast_dtype(type);
}

}  // namespace performer
