// performer scaling --config configs/quickstart.yaml --budgets 1e13,3e13,1e14 --shapes 2x96,4x128,4x192,6x256
//                   --lrs 1.5e-3,3e-3,6e-3 --query data/trembl-sample/QUERY.fasta.gz --out runs/scaling
// The isoFLOP study (experiments/scaling.h); `scaling-run` is its hidden per-run child.
#include <cstdio>

#include "cli/commands.h"
#include "experiments/scaling.h"
#include "util/process.h"

namespace performer::cli {

namespace {

void add_scaling_study(CLI::App& app, Action& run) {
  auto* cmd = app.add_subcommand("scaling", "isoFLOP study: held-out perplexity against training FLOPs for several model sizes");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto budgets = std::make_shared<std::string>("1e13,3e13,1e14");
  auto shapes = std::make_shared<std::string>("2x96,4x128,4x192,6x256");
  auto lrs = std::make_shared<std::string>();
  auto opts = std::make_shared<ScalingOptions>();
  cmd->add_option("-c,--config", *config, "base YAML run configuration (data, head width, d_ff ratio, schedule)")
      ->required();
  cmd->add_option("--set", *sets, "override a key of the base config (repeatable)");
  cmd->add_option("--budgets", *budgets, "comma-separated training budgets in model FLOPs")->capture_default_str();
  cmd->add_option("--shapes", *shapes, "comma-separated model shapes LAYERSxD_MODEL")->capture_default_str();
  cmd->add_option("--lrs", *lrs,
                  "learning rates tried at the smallest budget; each shape keeps its best on valid "
                  "(default: the config's train.lr)");
  cmd->add_option("--query", opts->query, "held-out proteins (FASTA/UniProt) also evaluated, e.g. QUERY.fasta.gz");
  cmd->add_option("--run-timeout", opts->run_timeout, "seconds a run may take before it is killed (0: none)")
      ->capture_default_str();
  cmd->add_flag("--resume", opts->resume, "keep the runs already finished in OUT/results.csv and run the rest");
  cmd->add_option("--out", opts->out, "output folder (results.csv, fit.txt, scaling.png, one folder per run)")->required();
  cmd->callback([&run, config, sets, budgets, shapes, lrs, opts] {
    run = [config, sets, budgets, shapes, lrs, opts] {
      ScalingOptions o = *opts;
      o.budgets = parse_number_list(*budgets, "--budgets");
      o.shapes = parse_shapes(*shapes, "--shapes");
      if (!lrs->empty()) o.lrs = parse_number_list(*lrs, "--lrs");
      o.executable = self_executable();
      run_scaling(load_config(*config, *sets), o);
      return 0;
    };
  });
}

// The child: trains and evaluates one run, writes its report (experiments/cell.h) to --report.
void add_scaling_run(CLI::App& app, Action& run) {
  auto* cmd = app.add_subcommand("scaling-run", "(internal) one run of `performer scaling`");
  cmd->group("");  // hidden from help
  auto config = std::make_shared<std::string>();
  auto query = std::make_shared<std::string>();
  auto report = std::make_shared<std::string>();
  cmd->add_option("--config", *config, "resolved run configuration")->required();
  cmd->add_option("--query", *query, "held-out proteins");
  cmd->add_option("--report", *report, "where to write the run's result (YAML)")->required();
  cmd->callback([&run, config, query, report] {
    run = [config, query, report] {
      write_cell_report(*report, run_scaling_child(load_config(*config), *query));
      return 0;
    };
  });
}

}  // namespace

void add_scaling(CLI::App& app, Action& run) {
  add_scaling_study(app, run);
  add_scaling_run(app, run);
}

}  // namespace performer::cli
