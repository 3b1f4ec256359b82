// The numeric precision of a run: float32 throughout, or bfloat16 autocast (matrix products in bf16 with
// float32 accumulation, everything numerically delicate kept in float32), on CPU and CUDA alike.
//
// Whether bf16 pays off depends on the machine: a CPU with bf16 matrix units (AVX512_BF16, AMX) and a
// LibTorch whose BLAS uses them runs bf16 GEMMs 3-5x faster than float32; one without runs them slower
// (emulated). A fast bf16 GEMM is not enough either: Debian's LibTorch 1.13 multiplies in bf16 at twice
// the float32 rate on an AVX512_BF16 CPU, yet trains 10x slower in bf16, its element-wise bf16 kernels
// and casts being slow. So the choice is measured, not guessed: a short probe on the run's device (about
// 0.5 s) times a transformer feed-forward block (linear, GELU, linear, forward and backward) in float32
// and under bf16 autocast, and a square GEMM in both, and its figures are printed at start.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace performer {

// runtime.precision and --precision: fp32, bf16 (asked for: used even where measured slower, with a
// warning), auto (bf16 where the probe below measures it at least kAutoBf16Speedup times faster, else fp32).
enum class Precision { kFp32, kBf16, kAuto };
const std::vector<std::string>& precision_names();  // "fp32", "bf16", "auto"
Precision parse_precision(const std::string& s, const std::string& what = "runtime.precision");
std::string precision_name(Precision p);

// auto takes bf16 from this measured block speed-up on: below it, bf16's rounding is not worth the time.
// Nor does it where bf16 GEMMs sum in bf16 (bf16_gemm_accumulates_in_float32), whatever their speed.
constexpr double kAutoBf16Speedup = 1.5;

// Throughput of an n x n x n matrix product on `device` in `dtype`, in GFLOP/s (2 n^3 per product), the
// best of repeated products over about `seconds` after one warm-up.
double measure_gemm_gflops(const c10::Device& device, c10::ScalarType dtype, int64_t n, double seconds);

// Seconds of one forward and backward pass of a feed-forward block (x [tokens, d] -> linear d x 4d ->
// GELU -> linear 4d x d), the best of repeats over about `seconds`; under bf16 autocast when `bf16`.
double measure_block_seconds(const c10::Device& device, bool bf16, int64_t tokens, int64_t d, double seconds);

// Whether this LibTorch's bf16 matrix products on `device` sum in float32: 1,024 products 1 x (1 + 2^-7)
// (bmm with each operand plain or transposed, and mm) must give exactly 1,032, which only float32 sums reach.
// Debian's LibTorch 1.13 on a CPU without AVX-512 (its bf16 GEMMs then skip oneDNN) sums in bf16 in three of
// the four layouts: 512 or 2,048 ones give 256 (256 + 1 rounds to 256), measured on a 2-core AMD EPYC with
// AVX2, 2026-12-03. Measured once per process and device type (about a millisecond).
bool bf16_gemm_accumulates_in_float32(const c10::Device& device);

struct PrecisionProbe {
  int64_t n = 0;                            // GEMM size
  double fp32_gflops = 0, bf16_gflops = 0;  // GEMM
  bool bf16_sums_in_float32 = true;         // bf16_gemm_accumulates_in_float32
  int64_t tokens = 0, d = 0;                // block shape
  double fp32_block = 0, bf16_block = 0;    // block seconds
  // What bf16 gains on a model's step: the block's float32 time over its bf16 time.
  double speedup() const { return bf16_block > 0 ? fp32_block / bf16_block : 0; }
  // "block fwd+bwd 3.10x faster in bf16 (4.1 vs 12.7 ms, 2048 x 128); GEMM bf16 1102, fp32 301 GFLOP/s (n 1024)"
  std::string describe() const;
};
PrecisionProbe probe_precision(const c10::Device& device);

// The precision a run uses (kFp32 or kBf16) for the one asked for on `device`, with the line that says
// why (empty for fp32 asked for). `warning`: bf16 was asked for but measured slower than fp32 here, or this
// LibTorch's bf16 GEMMs sum in bf16.
// Throws Error where bf16 autocast is not available (CUDA on LibTorch < 2.4).
struct PrecisionChoice {
  Precision precision = Precision::kFp32;
  PrecisionProbe probe;
  std::string note;
  bool warning = false;
};
PrecisionChoice choose_precision(Precision requested, const c10::Device& device);
// As choose_precision, then the note on stderr ("warning: " when it is one). For one-process commands.
Precision resolve_precision(Precision requested, const c10::Device& device);

// bf16 autocast for `device`'s type on this thread while alive (autocast state is per thread); nothing
// for fp32. Restores the previous state and clears autocast's weight cache on exit.
class AutocastScope {
 public:
  AutocastScope(const c10::Device& device, Precision precision);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::DeviceType::CPU;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::BFloat16;
};

// The lower-precision dtype of the autocast active on this thread for `type`, if any (read before a
// region that turns autocast off, to run its large products in that dtype on purpose).
std::optional<c10::ScalarType> active_autocast_dtype(c10::DeviceType type);

}  // namespace performer
