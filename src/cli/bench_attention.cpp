// performer bench attention [--lengths ...] [--kinds ...] [--device ...] [--precision fp32|bf16] [--csv FILE] ...
// The options and one call (experiments/attention_bench.h has what is measured and how); the hidden
// `bench attention-cell` is the child that measures one CPU cell.
#include <memory>

#include "cli/commands.h"
#include "experiments/attention_bench.h"
#include "util/error.h"
#include "util/names.h"
#include "util/precision.h"
#include "util/process.h"
#include "util/text.h"

namespace performer::cli {

namespace {

// The options the sweep and its child share (the child gets them on its command line).
void add_cell_options(CLI::App* c, AttentionCell& spec, std::string& limit, std::string& precision) {
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
  c->add_option("--precision", precision, "fp32 | bf16 (q, k, v in bfloat16 under bf16 autocast, as a model layer in bf16 runs: FAVOR features in float32, its large products on bf16 operands)")
      ->capture_default_str();
  c->add_option("--memory-limit", limit, "per-cell memory limit, e.g. 16GB (default: 90% of RAM)");
}

// The child: `bench attention-cell --kind K --length L ... --report PATH`.
void add_bench_attention_cell(CLI::App& bench, Action& run, std::shared_ptr<AttentionCell> spec,
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
      spec->precision = parse_precision(*precision, "--precision");
      return run_attention_bench_cell(*spec, *report);
    };
  });
}

}  // namespace

void add_bench_attention(CLI::App& bench, Action& run) {
  auto spec = std::make_shared<AttentionCell>();
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
      const bool cuda = attention_bench_on_cuda(*device);
      // auto: measured once here, and every cell runs what it chose.
      spec->precision = resolve_precision(parse_precision(*precision, "--precision"),
                                          cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU));
      const uint64_t mem_limit = limit->empty() ? physical_memory_bytes() / 10 * 9 : parse_bytes(*limit);
      const std::vector<AttentionKind> kind_list = parse_kinds_option(*kinds);
      const std::vector<int64_t> Ls = parse_int_list(*lengths, "--lengths", 1);
      return run_attention_bench(*spec, Ls, kind_list, cuda, mem_limit, *timeout, *csv);
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
