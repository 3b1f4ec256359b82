// performer longseq --config configs/longseq.yaml [--lengths ...] [--kinds ...] [--steps N]
//                   [--memory-limit 16GB] --out DIR
// The concatenated long-sequence sweep (experiments/longseq.h); `longseq-cell` is its hidden per-cell child,
// which reports through the harness of experiments/cell.h.
#include <cstdio>
#include <cstdlib>

#include "cli/commands.h"
#include "experiments/longseq.h"
#include "util/error.h"
#include "util/names.h"
#include "util/process.h"
#include "util/text.h"

namespace performer::cli {

namespace {

// The options of `longseq` that go straight into LongseqOptions.
void add_sweep_options(CLI::App* cmd, LongseqOptions& opts) {
  cmd->add_option("--steps", opts.steps, "training steps per cell (default: the config's train.steps)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--eval-tokens", opts.eval_tokens, "valid tokens per evaluation (the same residues at every L)")
      ->capture_default_str();
  cmd->add_option("--timing-warmup", opts.timing_warmup, "steps left out of tokens/s")->capture_default_str();
  cmd->add_option("--cell-timeout", opts.cell_timeout,
                  "seconds a cell may run before it is killed and reported TIMEOUT (0: no deadline)")
      ->capture_default_str();
  cmd->add_flag("--resume", opts.resume,
                "keep the cells already finished in OUT/results.csv (same config assumed) and run the rest; "
                "with every cell finished it only redraws the table and plots");
  cmd->add_option("--out", opts.out, "output folder (results.csv, plots, one folder per cell)")->required();
}

void add_longseq_sweep(CLI::App& app, Action& run) {
  auto* cmd = app.add_subcommand(
      "longseq", "Long-sequence sweep on concatenated proteins: tokens/s, peak memory and perplexity per length and kind");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto lengths = std::make_shared<std::string>("1024,2048,4096,8192,16384");
  auto kinds = std::make_shared<std::string>(join(attention_kind_names(), ","));
  auto limit = std::make_shared<std::string>();
  auto opts = std::make_shared<LongseqOptions>();
  auto no_predict = std::make_shared<bool>(false);
  cmd->add_option("-c,--config", *config, "base YAML run configuration (e.g. configs/longseq.yaml)")->required();
  cmd->add_option("--set", *sets, "override a key of the base config (repeatable)");
  cmd->add_option("--lengths", *lengths, "comma-separated sequence lengths L")->capture_default_str();
  cmd->add_option("--kinds", *kinds, "comma-separated attention kinds")->capture_default_str();
  cmd->add_option("--memory-limit", *limit, "memory per cell, e.g. 16GB (default: 90% of RAM, or of GPU memory)");
  cmd->add_flag("--no-prediction", *no_predict,
                "run every cell even when its predicted need exceeds the limit (the limit is still enforced)");
  add_sweep_options(cmd, *opts);
  cmd->callback([&run, config, sets, lengths, kinds, limit, opts, no_predict] {
    run = [config, sets, lengths, kinds, limit, opts, no_predict] {
      RunConfig base = load_config(*config, *sets);
      LongseqOptions o = *opts;
      o.lengths = parse_int_list(*lengths, "--lengths", 1);
      o.kinds = parse_kinds_option(*kinds);
      o.memory_limit = limit->empty() ? 0 : parse_bytes(*limit);
      o.predict = !*no_predict;
      o.executable = self_executable();
      run_longseq(base, o);
      return 0;
    };
  });
}

// The child: trains one cell and writes its report (experiments/cell.h) to --report.
void add_longseq_cell(CLI::App& app, Action& run) {
  auto* cell = app.add_subcommand("longseq-cell", "(internal) one cell of `performer longseq`");
  cell->group("");  // hidden from help
  auto cell_config = std::make_shared<std::string>();
  auto cell_limit = std::make_shared<std::string>();
  auto warmup = std::make_shared<int64_t>(3);
  auto report = std::make_shared<std::string>();
  cell->add_option("--config", *cell_config, "resolved cell configuration")->required();
  cell->add_option("--memory-limit", *cell_limit, "memory limit");
  cell->add_option("--timing-warmup", *warmup, "steps left out of tokens/s");
  cell->add_option("--report", *report, "where to write the cell's result (YAML)")->required();
  cell->callback([&run, cell_config, cell_limit, warmup, report] {
    run = [cell_config, cell_limit, warmup, report] {
      RunConfig c = load_config(*cell_config);
      LongseqCell r = run_longseq_cell(c, cell_limit->empty() ? 0 : parse_bytes(*cell_limit), *warmup);
      write_cell_report(*report, longseq_cell_report(r));
      return 0;
    };
  });
}

}  // namespace

void add_longseq(CLI::App& app, Action& run) {
  add_longseq_sweep(app, run);
  add_longseq_cell(app, run);
}

}  // namespace performer::cli
