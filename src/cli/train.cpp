// performer train --config configs/X.yaml [--set key=value ...] [--resume PATH|auto] [--stop-after N]
#include <csignal>
#include <cstdio>

#include "cli/commands.h"
#include "data/prepare.h"
#include "train/trainer.h"
#include "util/log.h"
#include "util/text.h"

namespace performer::cli {

namespace {
void on_signal(int) {
  g_stop_training.store(true);
  g_prepare_interrupted.store(true);
}

// The global --threads, when given, overrides the config's runtime.threads (one knob wins, visibly: the
// run log prints the thread count).
void apply_thread_flag(CLI::App& app, RunConfig& c) {
  const CLI::Option* flag = app.get_option("--threads");
  if (flag->count() > 0) c.runtime.threads = flag->as<int64_t>();
}
}  // namespace

void add_train(CLI::App& app, Action& run) {
  auto* cmd = app.add_subcommand("train", "Train a protein language model (masked LM) from a YAML config");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto opts = std::make_shared<TrainOptions>();
  cmd->add_option("-c,--config", *config, "YAML run configuration (see `performer config --defaults`)")->required();
  cmd->add_option("--set", *sets, "override a key, e.g. --set train.lr=5e-4 (repeatable)");
  cmd->add_option("--resume", opts->resume, "checkpoint to resume from, or 'auto' for the newest in output.dir");
  cmd->add_option("--stop-after", opts->stop_after, "stop with a checkpoint after N steps of this invocation");
  cmd->add_flag("--overwrite", opts->overwrite,
                "start over in an output.dir that holds a run (its files are moved to output.dir/previous-<time>/)");
  auto skip_memory_check = std::make_shared<bool>(false);
  cmd->add_flag("--skip-memory-check", *skip_memory_check,
                "start even when the predicted memory of the run exceeds the device's memory");
  cmd->callback([&app, &run, config, sets, opts, skip_memory_check] {
    run = [&app, config, sets, opts, skip_memory_check] {
      RunConfig c = load_config(*config, *sets);
      apply_thread_flag(app, c);
      opts->check_memory = !*skip_memory_check;
      std::signal(SIGINT, on_signal);
      std::signal(SIGTERM, on_signal);
      TrainResult r = train(c, *opts);
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      if (r.stop_reason == StopReason::kInterrupted) {
        warn("interrupted at step " + std::to_string(r.step) + "; checkpoint " + r.checkpoint +
             "; resume with: performer train --config " + *config + " --resume auto");
        return 130;
      }
      return r.stop_reason == StopReason::kNonFinite ? 1 : 0;
    };
  });
}

void add_bench_train(CLI::App& bench, Action& run) {
  auto* cmd = bench.add_subcommand("train", "Tokens/s and peak memory of training steps for a config");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto steps = std::make_shared<int64_t>(5);
  auto warmup = std::make_shared<int64_t>(2);
  cmd->add_option("-c,--config", *config, "YAML run configuration")->required();
  cmd->add_option("--set", *sets, "override a key (repeatable)");
  cmd->add_option("--steps", *steps, "timed steps")->capture_default_str();
  cmd->add_option("--warmup", *warmup, "untimed steps first")->capture_default_str();
  cmd->callback([&bench, &run, config, sets, steps, warmup] {
    run = [&bench, config, sets, steps, warmup] {
      RunConfig c = load_config(*config, *sets);
      apply_thread_flag(*bench.get_parent(), c);
      TrainBenchResult r = bench_train(c, *steps, *warmup);
      std::printf("%s: %s, %.2f M parameters, device %s, %d threads\n", config->c_str(), c.model.describe().c_str(),
                  static_cast<double>(r.parameters) / 1e6, c.runtime.device.c_str(), torch::get_num_threads());
      std::printf("tokens/s %.0f (real tokens of %lld per step / %.3f s per step, mean over %lld steps after "
                  "%lld warm-up), peak memory %s\n",
                  r.tokens_per_second, static_cast<long long>(r.tokens_per_step), r.seconds_per_step,
                  static_cast<long long>(*steps), static_cast<long long>(*warmup), human_bytes(r.peak_bytes).c_str());
      return 0;
    };
  });
}

}  // namespace performer::cli
