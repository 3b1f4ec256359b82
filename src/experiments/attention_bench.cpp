#include "experiments/attention_bench.h"

#include <torch/torch.h>
#include <torch/version.h>
#ifdef PERFORMER_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "experiments/cell.h"
#include "io/csv.h"
#include "model/attention.h"
#include "model/exact_attention.h"
#include "model/kernels.h"
#include "train/config.h"
#include "util/device.h"
#include "util/error.h"
#include "util/names.h"
#include "util/precision.h"
#include "util/process.h"
#include "util/text.h"

namespace performer {

namespace {

struct CellResult {
  CellStatus status = CellStatus::kOk;  // ok | OOM | error
  double median_ms = 0;
  double peak_bytes = 0;
  double predicted_bytes = 0;
  std::string note;
};

// Rough peak need in bytes, following the kernel actually used: the plain exact formula (LibTorch 1.x)
// keeps ~3 [B,H,L,L] float32 matrices alive at once (scores, probabilities saved for backward, their
// gradient); the fused one (2.x) only [B,H,L,d] tensors; FAVOR with stored features a few [B,H,L,m] and
// [B,H,L,d] tensors, the lean FAVOR core (bidirectional) only [B,H,L,d] ones.
double predict_bytes(const AttentionCell& s) {
  const double f = 4.0, BH = static_cast<double>(s.B * s.H), L = static_cast<double>(s.L);
  const double linear = 12.0 * f * BH * L * static_cast<double>(s.d);
  if (s.kind == AttentionKind::kExact) return (exact_attention_stores_scores() ? 3.0 * f * BH * L * L : 0.0) + linear;
  if (!s.causal && !s.favor_stored) return linear;
  return f * BH * L * 8.0 * static_cast<double>(s.m) + linear;
}

// One forward+backward of the attention core as a model layer runs it (model/attention.h: exact_attention,
// favor_core); returns seconds. In bf16 the forward runs under bf16 autocast with bf16 q, k, v, as a model
// layer under runtime.precision bf16 does: exact attention on the bf16 inputs (the fused kernel's fastest
// case); FAVOR makes its features in float32 and runs its large products on bf16 operands (lean core).
double run_once(const AttentionCell& s, const torch::Device& dev, const at::Tensor& W) {
  auto opts = torch::TensorOptions().device(dev).dtype(s.precision == Precision::kBf16 ? torch::kBFloat16 : torch::kFloat);
  at::Tensor q = torch::randn({s.B, s.H, s.L, s.d}, opts).requires_grad_();
  at::Tensor k = torch::randn({s.B, s.H, s.L, s.d}, opts).requires_grad_();
  at::Tensor v = torch::randn({s.B, s.H, s.L, s.d}, opts).requires_grad_();
#ifdef PERFORMER_CUDA
  if (dev.is_cuda()) torch::cuda::synchronize();
#endif
  auto t0 = std::chrono::steady_clock::now();
  at::Tensor out;
  const AutocastScope autocast(dev, s.precision);
  if (s.kind == AttentionKind::kExact) {
    out = exact_attention(q, k, v, {}, s.causal);
  } else {
    AttentionOptions o;
    o.kind = s.kind;
    o.causal = s.causal;
    o.favor_lean = !s.favor_stored;
    o.favor_chunk = s.favor_chunk;
    out = favor_core(o, W, q, k, v, {});
  }
  out.sum().backward();
#ifdef PERFORMER_CUDA
  if (dev.is_cuda()) torch::cuda::synchronize();
#endif
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

CellResult measure_in_process(const AttentionCell& s, const torch::Device& dev) {
  CellResult r;
  r.predicted_bytes = predict_bytes(s);
  try {
    at::Tensor W = orthogonal_gaussian_projection(s.m, s.d, RowNorms::kChi, 1).to(torch::kFloat).to(dev);
#ifdef PERFORMER_CUDA
    if (dev.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(dev.index() < 0 ? 0 : dev.index());
#endif
    std::vector<double> times;
    for (int i = 0; i < s.warmup + s.repeats; ++i) {
      double t = run_once(s, dev, W);
      if (i >= s.warmup) times.push_back(t);
    }
    std::sort(times.begin(), times.end());
    r.median_ms = 1e3 * times[times.size() / 2];
#ifdef PERFORMER_CUDA
    if (dev.is_cuda()) {
      auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.index() < 0 ? 0 : dev.index());
      r.peak_bytes = static_cast<double>(stats.allocated_bytes[0].peak);
    }
#endif
  } catch (const std::bad_alloc&) {
    r.status = CellStatus::kOom;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    r.status = is_out_of_memory_message(msg) ? CellStatus::kOom : CellStatus::kError;
    r.note = msg.substr(0, msg.find('\n'));
  }
#ifdef PERFORMER_CUDA
  if (dev.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  return r;
}

}  // namespace

// Child side: measures one CPU cell and writes its report (figures median_ms, peak_bytes) to `report`.
// The memory limit is the parent's to enforce (experiments/cell.h).
int run_attention_bench_cell(const AttentionCell& s, const std::string& report) {
  const uint64_t base_rss = current_rss_bytes();
  CellResult r = measure_in_process(s, torch::kCPU);
  const double peak = static_cast<double>(peak_rss_bytes()) - static_cast<double>(base_rss);
  write_cell_report(report, {r.status, r.note, {{"median_ms", r.median_ms}, {"peak_bytes", std::max(0.0, peak)}}});
  return 0;
}

namespace {

// The child's command line (`bench attention-cell ...`; the harness appends --report).
std::vector<std::string> child_argv(const AttentionCell& s, uint64_t limit) {
  std::vector<std::string> argv = {self_executable(), "--threads", std::to_string(torch::get_num_threads()), "bench",
                                   "attention-cell", "--kind", attention_kind_name(s.kind), "--length",
                                   std::to_string(s.L), "--batch", std::to_string(s.B), "--heads", std::to_string(s.H),
                                   "--dim", std::to_string(s.d), "--features", std::to_string(s.m), "--repeats",
                                   std::to_string(s.repeats), "--warmup", std::to_string(s.warmup), "--memory-limit",
                                   std::to_string(limit) + "B", "--precision", precision_name(s.precision),
                                   "--favor-chunk", std::to_string(s.favor_chunk)};
  if (s.favor_stored) argv.push_back("--favor-stored");
  if (s.causal) argv.push_back("--causal");
  return argv;
}

// Parent side of a CPU cell: predicted OOM without running, or measured in a child (experiments/cell.h).
CellResult measure_in_child(const AttentionCell& s, uint64_t limit, double timeout_seconds) {
  CellResult r;
  r.predicted_bytes = predict_bytes(s);
  if (limit > 0 && r.predicted_bytes > static_cast<double>(limit)) {
    r.status = CellStatus::kOom;
    r.note = "predicted " + human_bytes(r.predicted_bytes) + " > limit " + human_bytes(static_cast<double>(limit));
    return r;
  }
  CellCommand command;
  command.argv = child_argv(s, limit);
  command.timeout_seconds = timeout_seconds;  // a child that hangs never hangs the sweep
  // Watched by this process: the limit counts beyond a child's start-up footprint (about this process's own).
  if (limit > 0) command.memory_limit = limit + anonymous_rss_bytes();
  const CellOutcome outcome = run_cell(command);
  r.status = outcome.report.status;
  r.note = outcome.report.note;
  if (!outcome.reported) return r;
  try {
    r.median_ms = outcome.report.figure("median_ms");
    r.peak_bytes = outcome.report.figure("peak_bytes");
  } catch (const Error& e) {
    r.status = CellStatus::kError;
    r.note = e.what();
  }
  return r;
}

}  // namespace

bool attention_bench_on_cuda(const std::string& device) {
  const bool cuda = resolve_device(device, "--device").is_cuda();
#ifndef PERFORMER_CUDA
  if (cuda) throw Error("--device cuda: this build of performer has no CUDA support");
#endif
  return cuda;
}

namespace {

void print_header(const AttentionCell& spec, const std::vector<AttentionKind>& kinds, bool cuda, uint64_t limit) {
  const std::string device = device_name(cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU));
  std::printf("attention forward+backward, %s, B=%lld H=%lld d=%lld m=%lld%s, FAVOR %s (chunk %s), %s, %d threads, median "
              "of %d after %d warm-up, memory limit %s, LibTorch %s, exact attention %s\n",
              device.c_str(), static_cast<long long>(spec.B), static_cast<long long>(spec.H),
              static_cast<long long>(spec.d), static_cast<long long>(spec.m), spec.causal ? ", causal" : "",
              spec.favor_stored || spec.causal ? "features stored" : "lean",
              spec.favor_chunk > 0 ? std::to_string(spec.favor_chunk).c_str() : "auto",
              precision_name(spec.precision).c_str(),
              torch::get_num_threads(), spec.repeats, spec.warmup, human_bytes(static_cast<double>(limit)).c_str(),
              TORCH_VERSION, exact_attention_stores_scores() ? "plain (stores L x L)" : "fused (scaled_dot_product_attention)");
  std::printf("%8s", "L");
  for (const AttentionKind k : kinds) std::printf(" | %14s ms %10s", attention_kind_name(k).c_str(), "peak");
  if (kinds.size() > 1) std::printf(" | speed-up vs %s", attention_kind_name(kinds[0]).c_str());
  std::printf("\n");
}

// Which FAVOR core a cell runs: "lean", "stored" (features stored whole: --favor-stored, or causal), "-" (exact).
std::string favor_core_name(const AttentionCell& s) {
  if (s.kind == AttentionKind::kExact) return "-";
  return s.favor_stored || s.causal ? "stored" : "lean";
}

// One --csv row per cell, written through as it is measured (a sweep stopped by a time limit keeps its rows).
const std::vector<std::string>& csv_columns() {
  static const std::vector<std::string> columns{"device", "kind", "causal", "batch", "heads", "length", "dim",
                                                "features", "status", "median_ms", "peak_bytes", "predicted_bytes",
                                                "note", "precision", "favor_core", "favor_chunk"};
  return columns;
}

CsvRow csv_row(const torch::Device& device, const AttentionCell& s, const CellResult& r) {
  return CsvRow() << device_name(device) << attention_kind_name(s.kind) << s.causal << s.B << s.H << s.L << s.d << s.m
                  << cell_status_name(r.status) << r.median_ms << r.peak_bytes << r.predicted_bytes << r.note
                  << precision_name(s.precision) << favor_core_name(s) << s.favor_chunk;
}

// Speed-up of each kind against the first, where both ran; or that the first failed where this one ran.
void print_speedups(const std::vector<CellResult>& row, const std::vector<AttentionKind>& kinds) {
  for (size_t i = 1; i < row.size(); ++i) {
    const std::string first = attention_kind_name(kinds[0]), name = attention_kind_name(kinds[i]);
    if (row[0].status == CellStatus::kOk && row[i].status == CellStatus::kOk)
      std::printf(" | %s %.1fx", name.c_str(), row[0].median_ms / row[i].median_ms);
    else if (row[i].status == CellStatus::kOk)
      std::printf(" | %s runs, %s %s", name.c_str(), first.c_str(), cell_status_name(row[0].status).c_str());
  }
}

}  // namespace

int run_attention_bench(const AttentionCell& spec, const std::vector<int64_t>& lengths,
                        const std::vector<AttentionKind>& kinds, bool cuda, uint64_t limit, double timeout_seconds,
                        const std::string& csv) {
  print_header(spec, kinds, cuda, limit);
  CsvWriter out = csv.empty() ? CsvWriter() : CsvWriter(csv, csv_columns());
  const torch::Device device = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  for (int64_t L : lengths) {
    std::printf("%8lld", static_cast<long long>(L));
    std::fflush(stdout);
    std::vector<CellResult> row;
    for (const AttentionKind k : kinds) {
      AttentionCell s = spec;
      s.kind = k;
      s.L = L;
      CellResult r = cuda ? measure_in_process(s, device) : measure_in_child(s, limit, timeout_seconds);
      row.push_back(r);
      if (r.status == CellStatus::kOk)
        std::printf(" | %17.1f %10s", r.median_ms, human_bytes(r.peak_bytes).c_str());
      else
        std::printf(" | %17s %10s", cell_status_name(r.status).c_str(), ("~" + human_bytes(r.predicted_bytes)).c_str());
      std::fflush(stdout);
      out.write(csv_row(device, s, r));
    }
    print_speedups(row, kinds);
    std::printf("\n");
  }
  if (out.is_open()) std::printf("wrote %s\n", csv.c_str());
  return 0;
}

}  // namespace performer
