// performer bench attention: forward+backward time and peak memory of one attention layer's core
// (features + attention, no projections) for exact, favor-softmax and favor-relu over a range of lengths.
//
// On CPU each cell runs in a fresh child process (`bench attention-cell`, through the harness of
// experiments/cell.h), so its peak resident memory is its own and an out-of-memory failure cannot take the
// sweep down; the parent kills a child whose resident memory passes --memory-limit above its start-up size
// (reported OOM), and the child reports median_ms and peak_bytes. Cells whose predicted need exceeds the limit are reported as OOM without
// running. On CUDA cells run in-process; peak memory is the caching allocator's peak.
// Time = median over --repeats runs after --warmup runs. Memory = peak minus the footprint before the cell.
#include <torch/torch.h>
#include <torch/version.h>
#ifdef PERFORMER_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/commands.h"
#include "experiments/cell.h"
#include "model/attention.h"
#include "model/exact_attention.h"
#include "model/kernels.h"
#include "train/config.h"
#include "util/device.h"
#include "io/csv.h"
#include "util/error.h"
#include "util/names.h"
#include "util/process.h"
#include "util/text.h"

namespace performer::cli {

namespace {

struct CellSpec {
  AttentionKind kind = AttentionKind::kExact;
  int64_t B = 1, H = 8, L = 1024, d = 64, m = 256;
  bool causal = false;
  bool favor_stored = false;  // bidirectional FAVOR: features stored whole instead of the lean core
  int64_t favor_chunk = 0;    // the lean core's chunk; 0 = automatic
  Precision precision = Precision::kFp32;  // bf16: q, k, v in bfloat16, as bf16 autocast's projections give them
  int repeats = 3, warmup = 1;
};

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
double predict_bytes(const CellSpec& s) {
  const double f = 4.0, BH = static_cast<double>(s.B * s.H), L = static_cast<double>(s.L);
  const double linear = 12.0 * f * BH * L * static_cast<double>(s.d);
  if (s.kind == AttentionKind::kExact) return (exact_attention_stores_scores() ? 3.0 * f * BH * L * L : 0.0) + linear;
  if (!s.causal && !s.favor_stored) return linear;
  return f * BH * L * 8.0 * static_cast<double>(s.m) + linear;
}

// One forward+backward of the attention core as a model layer runs it (model/attention.h: exact_attention,
// favor_core); returns seconds. In bf16, exact attention runs on the bf16 inputs (the fused kernel's fastest
// case) and FAVOR casts them to float32 first, as the model does.
double run_once(const CellSpec& s, const torch::Device& dev, const at::Tensor& W) {
  auto opts = torch::TensorOptions().device(dev).dtype(s.precision == Precision::kBf16 ? torch::kBFloat16 : torch::kFloat);
  at::Tensor q = torch::randn({s.B, s.H, s.L, s.d}, opts).requires_grad_();
  at::Tensor k = torch::randn({s.B, s.H, s.L, s.d}, opts).requires_grad_();
  at::Tensor v = torch::randn({s.B, s.H, s.L, s.d}, opts).requires_grad_();
#ifdef PERFORMER_CUDA
  if (dev.is_cuda()) torch::cuda::synchronize();
#endif
  auto t0 = std::chrono::steady_clock::now();
  at::Tensor out;
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

CellResult measure_in_process(const CellSpec& s, const torch::Device& dev) {
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

// Child side: measures one CPU cell and writes its report (figures median_ms, peak_bytes) to `report`.
// The memory limit is the parent's to enforce (experiments/cell.h); `limit` is unused here.
int run_cell_child(const CellSpec& s, uint64_t /*limit*/, const std::string& report) {
  const uint64_t base_rss = current_rss_bytes();
  CellResult r = measure_in_process(s, torch::kCPU);
  const double peak = static_cast<double>(peak_rss_bytes()) - static_cast<double>(base_rss);
  write_cell_report(report, {r.status, r.note, {{"median_ms", r.median_ms}, {"peak_bytes", std::max(0.0, peak)}}});
  return 0;
}

// The child's command line (`bench attention-cell ...`; the harness appends --report).
std::vector<std::string> child_argv(const CellSpec& s, uint64_t limit) {
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
CellResult measure_in_child(const CellSpec& s, uint64_t limit, double timeout_seconds) {
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

// --device: whether the sweep runs on CUDA (auto: when a device is available).
bool use_cuda(const std::string& device) {
  const bool cuda = resolve_device(device, "--device").is_cuda();
#ifndef PERFORMER_CUDA
  if (cuda) throw Error("--device cuda: this build of performer has no CUDA support");
#endif
  return cuda;
}

void print_header(const CellSpec& spec, const std::vector<AttentionKind>& kinds, bool cuda, uint64_t limit) {
  const std::string& device = device_name(cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU));
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
std::string favor_core_name(const CellSpec& s) {
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

CsvRow csv_row(const torch::Device& device, const CellSpec& s, const CellResult& r) {
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

// The sweep: one table row per length, one cell per kind (and a CSV row per cell when `csv` is given).
int run_bench_attention(const CellSpec& spec, const std::vector<int64_t>& lengths,
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
      CellSpec s = spec;
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

// The options the sweep and its child share (the child gets them on its command line).
void add_cell_options(CLI::App* c, CellSpec& spec, std::string& limit, std::string& precision) {
  c->add_option("--batch", spec.B, "batch size")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--heads", spec.H, "heads")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--dim", spec.d, "head dimension")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--features", spec.m, "random features m")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--repeats", spec.repeats, "timed runs per cell (median)")->capture_default_str();
  c->add_option("--warmup", spec.warmup, "untimed runs per cell")->capture_default_str();
  c->add_flag("--causal", spec.causal, "causal (unidirectional) attention");
  c->add_flag("--favor-stored", spec.favor_stored,
              "bidirectional FAVOR with the features stored whole (model.favor_lean: false) instead of the lean core");
  c->add_option("--favor-chunk", spec.favor_chunk, "positions per chunk of the lean FAVOR core (model.favor_chunk); 0 = automatic")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  c->add_option("--precision", precision, "fp32 | bf16 (q, k, v in bfloat16; FAVOR computes in float32 as the model does)")
      ->capture_default_str();
  c->add_option("--memory-limit", limit, "per-cell memory limit, e.g. 16GB (default: 90% of RAM)");
}

// The child: `bench attention-cell --kind K --length L ... --report PATH`.
void add_bench_attention_cell(CLI::App& bench, Action& run, std::shared_ptr<CellSpec> spec,
                              std::shared_ptr<std::string> limit, std::shared_ptr<std::string> precision) {
  auto* cell = bench.add_subcommand("attention-cell", "(internal) one cell of `bench attention`");
  cell->group("");  // hidden from help
  auto kind = std::make_shared<std::string>();
  auto report = std::make_shared<std::string>();
  add_cell_options(cell, *spec, *limit, *precision);
  cell->add_option("--kind", *kind, "attention kind")->required();
  cell->add_option("--length", spec->L, "sequence length")->required();
  cell->add_option("--report", *report, "where to write the cell's result (YAML)")->required();
  cell->callback([&run, spec, limit, kind, report, precision] {
    run = [spec, limit, kind, report, precision] {
      spec->kind = parse_attention_kind(*kind);
      spec->precision = parse_precision(*precision);
      return run_cell_child(*spec, limit->empty() ? 0 : parse_bytes(*limit), *report);
    };
  });
}

}  // namespace

void add_bench_attention(CLI::App& bench, Action& run) {
  auto spec = std::make_shared<CellSpec>();
  auto lengths = std::make_shared<std::string>("512,1024,2048,4096,8192,16384");
  auto kinds = std::make_shared<std::string>(join(attention_kind_names(), ","));
  auto device = std::make_shared<std::string>("auto");
  auto csv = std::make_shared<std::string>();
  auto limit = std::make_shared<std::string>();
  auto timeout = std::make_shared<double>(600);
  auto* cmd = bench.add_subcommand("attention", "Time and memory of exact vs FAVOR attention over sequence lengths");
  auto precision = std::make_shared<std::string>("fp32");
  add_cell_options(cmd, *spec, *limit, *precision);
  cmd->add_option("--lengths", *lengths, "comma-separated sequence lengths")->capture_default_str();
  cmd->add_option("--kinds", *kinds, "comma-separated attention kinds")->capture_default_str();
  add_device_option(cmd, *device);
  cmd->add_option("--csv", *csv, "also write the table as CSV to this file");
  cmd->add_option("--cell-timeout", *timeout, "seconds a CPU cell may run before it is killed and reported TIMEOUT; 0 = none")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->callback([&run, spec, lengths, kinds, device, csv, limit, timeout, precision] {
    run = [spec, lengths, kinds, device, csv, limit, timeout, precision] {
      spec->precision = parse_precision(*precision);
      const bool cuda = use_cuda(*device);
      const uint64_t mem_limit = limit->empty() ? physical_memory_bytes() / 10 * 9 : parse_bytes(*limit);
      const std::vector<AttentionKind> kind_list = parse_kinds_option(*kinds);
      const std::vector<int64_t> Ls = parse_int_list(*lengths, "--lengths", 1);
      return run_bench_attention(*spec, Ls, kind_list, cuda, mem_limit, *timeout, *csv);
    };
  });
  add_bench_attention_cell(bench, run, spec, limit, precision);
}

void add_bench(CLI::App& app, Action& run) {
  auto* bench = app.add_subcommand("bench", "Benchmarks that print measured figures");
  bench->require_subcommand(1);
  add_bench_attention(*bench, run);
  add_bench_train(*bench, run);
  add_bench_loader(*bench, run);
}

}  // namespace performer::cli
