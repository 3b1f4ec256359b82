#include "experiments/longseq.h"

#include <torch/torch.h>
#include <torch/version.h>
#ifdef PERFORMER_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include "data/corpus_cache.h"
#include "io/csv.h"
#include "io/plot.h"
#include "train/memory.h"
#include "train/trainer.h"
#include "util/clock.h"
#include "util/device.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"
#include "util/process.h"
#include "util/text.h"

namespace performer {

namespace fs = std::filesystem;

namespace {

int64_t rows_for(const RunConfig& c) { return std::max<int64_t>(1, c.data.tokens_per_batch / c.data.max_len); }

std::string cell_name(int64_t L, AttentionKind kind) { return "L" + std::to_string(L) + "-" + attention_kind_name(kind); }

// A note on one line of results.csv (its line breaks and tabs as "'", as before the CSV writer).
std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = '\'';
  return s;
}

}  // namespace

RunConfig longseq_cell_config(const RunConfig& base, int64_t L, AttentionKind kind, int64_t steps,
                              int64_t eval_tokens, const std::string& cell_dir) {
  RunConfig c = base;
  c.data.concat = true;
  c.data.max_len = L;
  c.data.tokens_per_batch = std::max(c.data.tokens_per_batch, L);  // at least one full row
  c.model.max_len = L;
  c.model.kind = kind;
  if (steps > 0) c.train.steps = steps;
  c.train.warmup_steps = std::min(c.train.warmup_steps, std::max<int64_t>(0, c.train.steps - 1));
  c.train.max_minutes = 0;
  c.train.budget_minutes = 0;  // a cell trains its steps, whatever the time
  c.eval.max_sequences = std::max<int64_t>(1, (eval_tokens + L - 1) / L);
  if (c.eval.every >= c.train.steps) c.eval.every = 0;
  c.output.dir = cell_dir;
  c.output.checkpoint_every = 0;  // one checkpoint, at the end
  c.output.keep_last = 1;
  c.model.validate();
  return c;
}

CellReport longseq_cell_report(const LongseqCell& r) {
  CellReport report{r.status, r.note, {}};
  report.figures = {{"tokens_per_second", r.tokens_per_second},
                    {"peak_bytes", r.peak_bytes},
                    {"start_bytes", r.start_bytes},
                    {"final_loss", r.final_loss},
                    {"valid_perplexity", r.valid_perplexity},
                    {"valid_accuracy", r.valid_accuracy},
                    {"strict_perplexity", r.strict_perplexity},  // NaN for a causal cell
                    {"strict_accuracy", r.strict_accuracy},
                    {"rows", static_cast<double>(r.rows)},
                    {"steps", static_cast<double>(r.steps)}};
  return report;
}

void apply_longseq_report(const CellReport& report, LongseqCell& r) {
  r.tokens_per_second = report.figure("tokens_per_second");
  r.peak_bytes = report.figure("peak_bytes");
  r.start_bytes = report.figure("start_bytes");
  r.final_loss = report.figure("final_loss");
  r.valid_perplexity = report.figure("valid_perplexity");
  r.valid_accuracy = report.figure("valid_accuracy");
  r.strict_perplexity = report.figure("strict_perplexity");
  r.strict_accuracy = report.figure("strict_accuracy");
  r.rows = static_cast<int64_t>(report.figure("rows"));
  r.steps = static_cast<int64_t>(report.figure("steps"));
  r.status = report.status;
  r.note = report.note;
}

namespace {

// Holds a CUDA cell to `limit` bytes of GPU memory (the caching allocator's fraction). A CPU cell's limit is
// enforced by the parent, which watches the cell's resident memory (experiments/cell.h).
void apply_cell_memory_limit(const torch::Device& device, uint64_t limit) {
  if (limit == 0 || !device.is_cuda()) return;
#ifdef PERFORMER_CUDA
  const int index = device.has_index() ? device.index() : 0;
  // The caching allocator exists only once CUDA is initialized, which the first tensor on the device does;
  // setMemoryFraction before that fails ("Allocator not initialized for device 0"), seen on an H200.
  (void)at::empty({1}, at::TensorOptions().device(device));
  const double total = static_cast<double>(device_memory_bytes(device));
  if (total > 0)
    c10::cuda::CUDACachingAllocator::setMemoryFraction(std::min(1.0, static_cast<double>(limit) / total), index);
#endif
}

// A failure while training: OOM when the message says memory ran out, error otherwise.
void record_failure(LongseqCell& r, bool out_of_memory, const std::string& message) {
  r.status = out_of_memory ? CellStatus::kOom : CellStatus::kError;
  r.note = first_line(message);
}

}  // namespace

LongseqCell run_longseq_cell(const RunConfig& c, uint64_t limit, int64_t timing_warmup) {
  LongseqCell r;
  r.length = c.data.max_len;
  r.kind = c.model.kind;
  r.rows = rows_for(c);
  r.tokens_per_step = r.rows * c.data.max_len;
  const torch::Device device = resolve_device(c.runtime.device);
  apply_cell_memory_limit(device, limit);
  TrainOptions opt;
  opt.progress_bar = false;
  opt.check_memory = false;  // the sweep predicted this cell against its own limit, enforced above
  opt.timing_warmup = timing_warmup;
  opt.overwrite = true;  // a cell run again (new settings) starts over; the old files are kept aside
  try {
    TrainResult t = train(c, opt);
    r.steps = t.step;
    r.tokens_per_second = t.steady_tokens_per_second > 0 ? t.steady_tokens_per_second : t.tokens_per_second;
    r.peak_bytes = t.peak_bytes;
    r.start_bytes = t.start_bytes;
    r.final_loss = t.train_loss;
    r.valid_perplexity = t.valid_perplexity;
    r.valid_accuracy = t.valid_accuracy;
    r.strict_perplexity = t.strict_perplexity;
    r.strict_accuracy = t.strict_accuracy;
    if (t.stop_reason != StopReason::kCompleted)
      record_failure(r, false, "training stopped: " + stop_reason_name(t.stop_reason));
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    record_failure(r, is_out_of_memory_message(msg), msg);
  } catch (const std::bad_alloc&) {
    record_failure(r, true, "allocation failed (std::bad_alloc)");
  } catch (const std::exception& e) {
    record_failure(r, is_out_of_memory_message(e.what()), e.what());
  }
  if (r.status != CellStatus::kOk) r.peak_bytes = peak_memory(device);
  return r;
}

namespace {

const std::vector<std::string>& results_columns() {
  static const std::vector<std::string> columns{
      "device", "kind", "length", "rows", "tokens_per_step", "steps", "status", "tokens_per_second", "peak_bytes",
      "start_bytes", "predicted_bytes", "final_loss", "valid_perplexity", "valid_accuracy", "strict_perplexity",
      "strict_accuracy", "seconds", "note", "precision"};
  return columns;
}

}  // namespace

void write_longseq_csv(const std::string& path, const std::vector<LongseqCell>& cells, const std::string& device) {
  AtomicFile file(path);  // rewritten whole after every cell: never a half table under its name
  {
    CsvWriter out(file.temporary(), results_columns());
    for (const auto& r : cells)
      out.write(CsvRow() << device << attention_kind_name(r.kind) << r.length << r.rows << r.tokens_per_step << r.steps
                         << cell_status_name(r.status) << r.tokens_per_second << r.peak_bytes << r.start_bytes
                         << r.predicted_bytes << r.final_loss << r.valid_perplexity << r.valid_accuracy
                         << r.strict_perplexity << r.strict_accuracy << r.seconds << one_line(r.note)
                         << r.precision);
  }
  file.commit();
}

std::vector<LongseqCell> read_longseq_csv(const std::string& path) {
  std::vector<LongseqCell> cells;
  if (!fs::exists(path)) return cells;
  const CsvTable t = CsvTable::read(path);
  for (size_t i = 0; i < t.rows(); ++i) {
    LongseqCell r;
    try {
      r.kind = parse_attention_kind(t.text(i, "kind"));
      r.status = parse_cell_status(t.text(i, "status"));
    } catch (const Error& e) {
      throw Error(path + ": row " + std::to_string(i + 1) + ": " + e.what());
    }
    r.length = t.integer(i, "length");
    r.rows = t.integer(i, "rows");
    r.tokens_per_step = t.integer(i, "tokens_per_step");
    r.steps = t.integer(i, "steps");
    r.tokens_per_second = t.number(i, "tokens_per_second");
    r.peak_bytes = t.number(i, "peak_bytes");
    r.start_bytes = t.number(i, "start_bytes");
    r.predicted_bytes = t.number(i, "predicted_bytes");
    r.final_loss = t.number(i, "final_loss");
    r.valid_perplexity = t.number(i, "valid_perplexity");
    r.valid_accuracy = t.number(i, "valid_accuracy");
    r.strict_perplexity = t.number(i, "strict_perplexity");
    r.strict_accuracy = t.number(i, "strict_accuracy");
    r.seconds = t.number(i, "seconds");
    r.note = t.text(i, "note");
    if (t.has("precision")) r.precision = t.text(i, "precision");  // tables from before it: float32 runs
    cells.push_back(r);
  }
  return cells;
}

std::vector<std::pair<int64_t, double>> read_eval_curve(const std::string& dir) {
  std::vector<std::pair<int64_t, double>> out;
  const std::string path = (fs::path(dir) / "eval.csv").string();
  if (!fs::exists(path)) return out;
  // A cell killed (out of memory) at any moment may leave it empty or cut: the curve is what could be read.
  try {
    const CsvTable t = CsvTable::read(path);
    for (size_t i = 0; i < t.rows(); ++i) out.emplace_back(t.integer(i, "step"), t.number(i, "valid_perplexity"));
  } catch (const Error& e) {
    warn(std::string(e.what()) + "; its perplexity curve is left out of the plot");
  }
  return out;
}

namespace {

bool is_ok(const LongseqCell& r) { return r.status == CellStatus::kOk; }

// tokens_per_second.png and peak_memory.png: one line per kind over L, failed cells as crosses, the limit dashed.
void write_speed_and_memory_plots(const std::string& out, const std::vector<LongseqCell>& cells,
                                  const std::vector<int64_t>& lengths, const std::vector<AttentionKind>& kinds,
                                  double limit, const std::string& device) {
  std::vector<PlotSeries> speed, memory;
  for (const AttentionKind kind : kinds) {
    PlotSeries s{attention_kind_name(kind), {}, {}, {}}, m = s;
    for (const auto& r : cells) {
      if (r.kind != kind) continue;
      const double L = static_cast<double>(r.length);
      if (is_ok(r)) {
        s.x.push_back(L);
        s.y.push_back(r.tokens_per_second);
        m.x.push_back(L);
        m.y.push_back(r.peak_bytes);
      } else {
        s.failed_x.push_back(L);
        m.failed_x.push_back(L);
      }
    }
    speed.push_back(s);
    memory.push_back(m);
  }
  PlotOptions po;
  po.log_x = po.log_y = true;
  po.x_ticks.assign(lengths.begin(), lengths.end());
  po.x_label = "SEQUENCE LENGTH L (TOKENS)";
  po.title = "TRAINING TOKENS/S VS L (" + device + ")";
  po.y_label = "TOKENS/S";
  write_png((fs::path(out) / "tokens_per_second.png").string(), line_plot(speed, po));
  const bool cpu = device == device_name(torch::Device(torch::kCPU));
  po.title = "PEAK MEMORY VS L (" + device + (cpu ? ", PEAK RSS OF THE CELL)" : ", MAX ALLOCATED)");
  po.y_label = "BYTES";
  po.references = {PlotReference{limit, "LIMIT " + human_bytes(limit)}};
  write_png((fs::path(out) / "peak_memory.png").string(), line_plot(memory, po));
}

// The lengths with a perplexity plot: the longest, and the longest where every kind ran when that differs.
std::vector<int64_t> perplexity_plot_lengths(const std::vector<LongseqCell>& cells, const std::vector<int64_t>& lengths) {
  std::vector<int64_t> plot_lengths;
  if (!lengths.empty()) plot_lengths.push_back(*std::max_element(lengths.begin(), lengths.end()));
  int64_t all_ok = 0;
  for (int64_t L : lengths) {
    bool ok = true;
    for (const auto& r : cells)
      if (r.length == L && !is_ok(r)) ok = false;
    if (ok) all_ok = std::max(all_ok, L);
  }
  if (all_ok > 0 && (plot_lengths.empty() || all_ok != plot_lengths[0])) plot_lengths.push_back(all_ok);
  return plot_lengths;
}

// perplexity_L<L>.png: valid perplexity vs steps, one line per kind (a failed kind's name carries its status).
void write_perplexity_plot(const std::string& out, const std::vector<LongseqCell>& cells, int64_t L,
                           const std::vector<AttentionKind>& kinds, const std::string& device) {
  std::vector<PlotSeries> curves;
  for (const AttentionKind kind : kinds) {
    PlotSeries s{attention_kind_name(kind), {}, {}, {}};
    for (const auto& r : cells)
      if (r.length == L && r.kind == kind) {
        if (!is_ok(r)) s.name += " (" + cell_status_name(r.status) + ")";
        for (auto& [step, ppl] : read_eval_curve(r.dir)) {
          s.x.push_back(static_cast<double>(step));
          s.y.push_back(ppl);
        }
      }
    curves.push_back(s);
  }
  PlotOptions pp;
  pp.title = "VALID PERPLEXITY VS STEPS, L = " + std::to_string(L) + " (" + device + ")";
  pp.x_label = "TRAINING STEP";
  pp.y_label = "MASKED PERPLEXITY";
  write_png((fs::path(out) / ("perplexity_L" + std::to_string(L) + ".png")).string(), line_plot(curves, pp));
}

// One row per cell, in sweep order.
void print_cells(const std::vector<LongseqCell>& cells, const std::vector<int64_t>& lengths,
                 const std::vector<AttentionKind>& kinds) {
  std::printf("\n%7s %-14s %5s %-6s %10s %10s %10s %10s %9s %9s %9s\n", "L", "kind", "rows", "status", "tokens/s",
              "peak mem", "predicted", "final loss", "valid ppl", "valid acc", "all-mask");
  for (int64_t L : lengths)
    for (const AttentionKind kind : kinds)
      for (const auto& r : cells) {
        if (r.length != L || r.kind != kind) continue;
        const std::string name = attention_kind_name(kind);
        if (is_ok(r))
          std::printf("%7lld %-14s %5lld %-6s %10.0f %10s %10s %10.4f %9.3f %9.4f %9.3f\n", static_cast<long long>(L),
                      name.c_str(), static_cast<long long>(r.rows), cell_status_name(r.status).c_str(), r.tokens_per_second,
                      human_bytes(r.peak_bytes).c_str(), human_bytes(r.predicted_bytes).c_str(), r.final_loss,
                      r.valid_perplexity, r.valid_accuracy, r.strict_perplexity);
        else
          std::printf("%7lld %-14s %5lld %-6s %10s %10s %10s  %s\n", static_cast<long long>(L), name.c_str(),
                      static_cast<long long>(r.rows), cell_status_name(r.status).c_str(), "-",
                      r.peak_bytes > 0 ? human_bytes(r.peak_bytes).c_str() : "-",
                      human_bytes(r.predicted_bytes).c_str(), r.note.c_str());
      }
}

// Ratios against exact attention, per length: speed, memory, perplexity; or that exact failed where r ran.
void print_ratios(const std::vector<LongseqCell>& cells, const std::vector<int64_t>& lengths) {
  for (int64_t L : lengths) {
    const LongseqCell* ex = nullptr;
    for (const auto& r : cells)
      if (r.length == L && r.kind == AttentionKind::kExact) ex = &r;
    if (!ex) continue;
    for (const auto& r : cells) {
      if (r.length != L || r.kind == AttentionKind::kExact || !is_ok(r)) continue;
      const std::string name = attention_kind_name(r.kind);
      if (is_ok(*ex))
        std::printf("L=%lld %s vs exact: %.2fx tokens/s, %.2fx peak memory, valid perplexity %+.1f%%\n",
                    static_cast<long long>(L), name.c_str(), r.tokens_per_second / ex->tokens_per_second,
                    r.peak_bytes / ex->peak_bytes, 100.0 * (r.valid_perplexity / ex->valid_perplexity - 1.0));
      else
        std::printf("L=%lld %s runs (%.0f tokens/s, %s); exact is %s (predicted %s)\n", static_cast<long long>(L),
                    name.c_str(), r.tokens_per_second, human_bytes(r.peak_bytes).c_str(),
                    cell_status_name(ex->status).c_str(), human_bytes(ex->predicted_bytes).c_str());
    }
  }
}

// What every cell of a sweep shares.
struct Sweep {
  RunConfig base;            // the config with concat on, output.dir = --out, data.train = the prepared corpus
  torch::Device device = torch::kCPU;
  std::string device_name;   // cpu | cuda
  double limit = 0;          // bytes per cell
  double corpus_bytes = 0;   // size of the prepared corpus (loaded by every cell)
  double process_bytes = 0;  // a cell process's start-up footprint (CPU), added to each prediction
  int64_t steps = 0;
  std::string csv;           // out/results.csv
  std::chrono::steady_clock::time_point start;
};

// The option checks that need nothing but the options.
void check_options(const LongseqOptions& o) {
  if (o.out.empty()) throw Error("longseq: --out is required");
  for (int64_t L : o.lengths)
    if (L < 8) throw Error("--lengths: " + std::to_string(L) + " is too short (at least 8 tokens)");
  if (o.lengths.empty() || o.kinds.empty()) throw Error("longseq: nothing to run (empty --lengths or --kinds)");
  if (o.cell_timeout < 0) throw Error("--cell-timeout must be positive (seconds), or 0 for none");
}

// Bytes each cell may use: --memory-limit, or 90% of the device's memory. On CPU the limit is on a cell's
// anonymous resident memory (RssAnon, what the sweep watches: heap and stacks, not the pages of the
// binary, its libraries or the mapped corpus). A limit at or below what this process holds right after
// start-up (LibTorch's own; every cell starts the same way) leaves a cell nothing to run with: refused
// instead of letting cells fail.
double cell_memory_limit(const torch::Device& device, uint64_t memory_limit) {
  const uint64_t footprint = anonymous_rss_bytes();
  if (!device.is_cuda() && memory_limit > 0 && memory_limit <= footprint)
    throw Error("--memory-limit " + human_bytes(static_cast<double>(memory_limit)) +
                " is below a cell's own start-up footprint (" + human_bytes(static_cast<double>(footprint)) +
                " of anonymous memory before any work)");
  if (memory_limit > 0) return static_cast<double>(memory_limit);
  return 0.9 * static_cast<double>(device_memory_bytes(device));
}

// Checks the options and the data, makes --out and the prepared corpus, prints the sweep's header line.
Sweep prepare_sweep(const RunConfig& base_in, const LongseqOptions& o) {
  check_options(o);
  Sweep s;
  s.base = base_in;
  s.base.output.dir = o.out;
  s.base.data.concat = true;
  require_training_data(s.base.data.train);  // before the output folder is made
  // Its fixed files (the cells' folders are named cell-<L>-<kind>) must not be an input.
  const fs::path out(o.out);
  refuse_overwriting_inputs("--out",
                            {o.out, (out / "results.csv").string(), (out / "tokens_per_second.png").string(),
                             (out / "peak_memory.png").string()},
                            {{"data.train", s.base.data.train}, {"data.clusters", s.base.data.clusters}});
  s.device = resolve_device(s.base.runtime.device);
  s.device_name = device_name(s.device);
  // auto measured once here: every cell runs in the same precision.
  s.base.runtime.precision = resolve_precision(s.base.runtime.precision, s.device);
  s.limit = cell_memory_limit(s.device, o.memory_limit);
  fs::create_directories(o.out);
  // One prepared corpus for every cell (data.train itself when it is already a prepared corpus).
  s.base.data.train = training_corpus(s.base);
  s.corpus_bytes = static_cast<double>(fs::file_size(s.base.data.train));
  // A cell process starts with about what this one has resident now (binary, LibTorch); predictions add it.
  s.process_bytes = s.device.is_cuda() ? 0.0 : static_cast<double>(anonymous_rss_bytes());
  s.steps = o.steps > 0 ? o.steps : s.base.train.steps;
  s.csv = (fs::path(o.out) / "results.csv").string();
  std::printf("longseq: %zu lengths x %zu kinds, %lld steps per cell, model %s, device %s, %s, %d threads, memory "
              "limit %s per cell, corpus %s, output %s\n",
              o.lengths.size(), o.kinds.size(), static_cast<long long>(s.steps), s.base.model.describe().c_str(),
              s.device_name.c_str(), precision_name(s.base.runtime.precision).c_str(), torch::get_num_threads(), human_bytes(s.limit).c_str(),
              s.base.data.train.c_str(), o.out.c_str());
  std::fflush(stdout);
  return s;
}

// The cells of an earlier results.csv that --resume keeps as they are: OOM, or ok with the same steps, both
// in the same precision.
const LongseqCell* finished_earlier(const std::vector<LongseqCell>& earlier, int64_t L, AttentionKind kind,
                                    int64_t steps, const std::string& precision) {
  for (const auto& e : earlier)
    if (e.length == L && e.kind == kind && e.precision == precision &&
        (e.status == CellStatus::kOom || (e.status == CellStatus::kOk && e.steps == steps)))
      return &e;
  return nullptr;
}

// Earlier cells outside this sweep: they stay in results.csv (after this sweep's cells).
std::vector<LongseqCell> outside_sweep(const std::vector<LongseqCell>& earlier, const std::vector<int64_t>& lengths,
                                       const std::vector<AttentionKind>& kinds) {
  std::vector<LongseqCell> others;
  for (const auto& e : earlier)
    if (std::find(lengths.begin(), lengths.end(), e.length) == lengths.end() ||
        std::find(kinds.begin(), kinds.end(), e.kind) == kinds.end())
      others.push_back(e);
  return others;
}

// Runs the cell `c` in a child process (experiments/cell.h) and reads its report into `r`. Files in the
// cell's folder: cell.yaml (its config), cell.log (the child's output), result.yaml (its report).
void measure_in_child(const RunConfig& c, LongseqCell& r, const std::string& executable, double limit,
                      int64_t timing_warmup, double cell_timeout) {
  fs::create_directories(r.dir);
  const std::string cell_yaml = (fs::path(r.dir) / "cell.yaml").string();
  const std::string log = r.dir + "/cell.log";
  std::ofstream(cell_yaml) << config_to_yaml(c);
  CellCommand command;
  command.argv = {executable, "--threads", std::to_string(torch::get_num_threads()), "longseq-cell", "--config",
                  cell_yaml, "--memory-limit", std::to_string(static_cast<uint64_t>(limit)) + "B", "--timing-warmup",
                  std::to_string(timing_warmup)};
  command.report_path = (fs::path(r.dir) / "result.yaml").string();
  command.timeout_seconds = cell_timeout;
  if (!resolve_device(c.runtime.device).is_cuda()) command.memory_limit = static_cast<uint64_t>(limit);
  const auto t0 = std::chrono::steady_clock::now();
  const CellOutcome outcome = run_cell(command);
  r.seconds = seconds_since(t0);
  std::ofstream(log) << outcome.child.output;
  if (outcome.reported) {
    try {
      apply_longseq_report(outcome.report, r);
      return;
    } catch (const Error& e) {
      r.status = CellStatus::kError;
      r.note = command.report_path + ": " + e.what();
      return;
    }
  }
  r.status = outcome.report.status;
  r.note = outcome.report.note;
  if (r.status == CellStatus::kTimeout) r.note += " (raise --cell-timeout); see " + log;
  else if (outcome.child.signal == 0) r.note += ", see " + log;
  r.peak_bytes = static_cast<double>(outcome.child.peak_rss);
}

// One cell of the sweep: kept from an earlier run (--resume), predicted OOM, or measured; prints its line.
LongseqCell sweep_cell(const Sweep& s, const LongseqOptions& o, int64_t L, AttentionKind kind,
                       const std::vector<LongseqCell>& earlier) {
  const std::string dir = (fs::path(o.out) / cell_name(L, kind)).string();
  const RunConfig c = longseq_cell_config(s.base, L, kind, s.steps, o.eval_tokens, dir);
  LongseqCell r;
  r.length = L;
  r.kind = kind;
  r.dir = dir;
  r.precision = precision_name(c.runtime.precision);
  r.rows = rows_for(c);
  r.tokens_per_step = r.rows * L;
  r.predicted_bytes = predict_training_bytes(c, s.corpus_bytes) + s.process_bytes;
  std::printf("[%s] L=%lld %s: ", human_duration(seconds_since(s.start)).c_str(), static_cast<long long>(L),
              attention_kind_name(kind).c_str());
  if (const LongseqCell* done = finished_earlier(earlier, L, kind, s.steps, r.precision)) {
    r = *done;
    r.dir = dir;
    std::printf("%s earlier (%s), kept\n", cell_status_name(r.status).c_str(), s.csv.c_str());
  } else if (o.predict && r.predicted_bytes > s.limit) {
    r.status = CellStatus::kOom;
    r.note = "predicted " + human_bytes(r.predicted_bytes) + " > limit " + human_bytes(s.limit) + ", not run";
    std::printf("OOM (%s)\n", r.note.c_str());
  } else {
    std::printf("training %lld steps of %lld x %lld tokens (predicted %s) ... ", static_cast<long long>(s.steps),
                static_cast<long long>(r.rows), static_cast<long long>(L), human_bytes(r.predicted_bytes).c_str());
    std::fflush(stdout);
    measure_in_child(c, r, o.executable, s.limit, o.timing_warmup, o.cell_timeout);
    if (is_ok(r))
      std::printf("%.0f tokens/s, peak %s, valid perplexity %.3f (%s)\n", r.tokens_per_second,
                  human_bytes(r.peak_bytes).c_str(), r.valid_perplexity, human_duration(r.seconds).c_str());
    else
      std::printf("%s: %s\n", cell_status_name(r.status).c_str(), r.note.c_str());
  }
  std::fflush(stdout);
  return r;
}

}  // namespace

std::vector<LongseqCell> run_longseq(const RunConfig& base, const LongseqOptions& o) {
  Sweep s = prepare_sweep(base, o);
  const std::vector<LongseqCell> earlier = o.resume ? read_longseq_csv(s.csv) : std::vector<LongseqCell>{};
  const std::vector<LongseqCell> others = outside_sweep(earlier, o.lengths, o.kinds);
  std::vector<LongseqCell> cells;
  s.start = std::chrono::steady_clock::now();
  for (int64_t L : o.lengths)
    for (const AttentionKind kind : o.kinds) {
      cells.push_back(sweep_cell(s, o, L, kind, earlier));
      std::vector<LongseqCell> all = cells;  // rewritten after every cell
      all.insert(all.end(), others.begin(), others.end());
      write_longseq_csv(s.csv, all, s.device_name);
    }
  print_cells(cells, o.lengths, o.kinds);
  print_ratios(cells, o.lengths);
  write_speed_and_memory_plots(o.out, cells, o.lengths, o.kinds, s.limit, s.device_name);
  for (int64_t L : perplexity_plot_lengths(cells, o.lengths))
    write_perplexity_plot(o.out, cells, L, o.kinds, s.device_name);
  std::printf("wrote %s, %s/tokens_per_second.png, %s/peak_memory.png, %s/perplexity_L*.png (%s in all)\n",
              s.csv.c_str(), o.out.c_str(), o.out.c_str(), o.out.c_str(), human_duration(seconds_since(s.start)).c_str());
  return cells;
}

}  // namespace performer
