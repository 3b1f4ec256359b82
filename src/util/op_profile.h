// Where a run's time goes, operator by operator: LibTorch's profiler (kineto, CPU activity) around a
// region, its events reduced to self time per operator name (an operator's time less that of the operators
// it called), and the trace saved for chrome://tracing or Perfetto.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace performer {

struct OpTime {
  std::string name;     // e.g. "aten::addmm", "AddmmBackward0"
  int64_t calls = 0;
  double self_s = 0;    // seconds in the operator itself, summed over its calls and threads
  double total_s = 0;   // seconds including the operators it called (outermost calls only, no double counting)
};

// One profiled region on this process. start() ... stop(); then ops() and save(). Throws Error where the
// LibTorch in use has no kineto profiler, or when a region is already being profiled.
class OpProfile {
 public:
  OpProfile();
  ~OpProfile();
  void start();
  void stop();
  // Every operator seen, by self time, largest first.
  const std::vector<OpTime>& ops() const { return ops_; }
  double region_seconds() const { return region_s_; }  // wall time from start() to stop()
  void save(const std::string& path) const;            // Chrome trace JSON, written whole or not at all

  // Throws Error, saying why, where this LibTorch cannot write traces (Debian's 1.13 is built without
  // kineto: it profiles, but cannot save). Measured once: a tiny profiled region saved to a temporary file.
  static void require_traces();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<OpTime> ops_;
  double region_s_ = 0;
};

// Self times of nested intervals: for events [start, start + duration) of one thread, each one's duration
// less that of the events directly inside it. Pure, for the profiler above and its tests.
struct OpEvent {
  uint64_t thread = 0, start_ns = 0, duration_ns = 0;
  std::string name;
};
std::vector<OpTime> self_times(std::vector<OpEvent> events);

// "  31.2%  412 ms  aten::addmm (1,200 calls)" lines for the top `n` operators, shares of `region_s`.
std::string describe_top_ops(const std::vector<OpTime>& ops, double region_s, size_t n);

// The matrix products' share of a profile: self time summed over LibTorch's GEMM operators (aten::mm,
// addmm, bmm, baddbmm, addbmm, matmul's own, addmv, mv, dot, and their in-place forms), the work whose
// rate bf16 matrix units raise. Element-wise work, reductions, copies and custom nodes (the FAVOR core's feature loops) are the rest.
// Comparing two profiles (float32 and bf16) gives the products' own speed-up, which bounds a whole step's
// wherever the rest gains no more than that from bf16.
double matrix_product_seconds(const std::vector<OpTime>& ops);
bool is_matrix_product(const std::string& op_name);

}  // namespace performer
