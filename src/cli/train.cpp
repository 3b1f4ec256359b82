// performer train --config configs/X.yaml [--set key=value ...] [--resume PATH|auto] [--init CKPT] [--stop-after N]
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "cli/launch.h"
#include "data/prepare.h"
#include "train/run_folder.h"
#include "train/trainer.h"
#include "io/csv.h"
#include "util/error.h"
#include "util/files.h"
#include "util/log.h"
#include "util/names.h"
#include "util/signals.h"
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
  cmd->add_option("--init", opts->init,
                  "start from this checkpoint's weights (fine-tuning, e.g. a model from `performer import`): step 0, "
                  "a fresh optimizer; the config's attention may differ from the checkpoint's");
  cmd->add_option("--stop-after", opts->stop_after, "stop with a checkpoint after N steps of this invocation");
  cmd->add_flag("--overwrite", opts->overwrite,
                "start over in an output.dir that holds a run (its files are moved to output.dir/previous-<time>/)");
  cmd->add_flag("--allow-corpus-change", opts->allow_corpus_change,
                "with --resume: continue on a corpus other than the one the checkpoint was trained on");
  auto skip_memory_check = std::make_shared<bool>(false);
  cmd->add_flag("--skip-memory-check", *skip_memory_check,
                "start even when the predicted memory of the run exceeds the device's memory");
  auto nproc = std::make_shared<int>(0);
  cmd->add_option("--nproc", *nproc,
                  "train with N local data-parallel processes (Gloo on CPU, one GPU each with NCCL), as torchrun "
                  "--nproc-per-node N would")
      ->check(CLI::Range(1, 1024));
  cmd->callback([&app, &run, config, sets, opts, skip_memory_check, nproc] {
    run = [&app, config, sets, opts, skip_memory_check, nproc] {
      RunConfig c = load_config(*config, *sets);
      if (*nproc > 1) return run_local_ranks(*nproc, c.runtime.timeout_s);
      apply_thread_flag(app, c);
      opts->check_memory = !*skip_memory_check;
      // SIGINT, SIGTERM, SIGHUP: checkpoint after the current step. Handled until the command returns, so
      // that one arriving late (`--nproc` stops the others when a rank ends interrupted) changes nothing.
      const StopSignals signals(on_signal);
      const TrainResult r = train(c, *opts);
      if (r.stop_reason == StopReason::kInterrupted) {
        if (!r.primary) return kInterruptedExit;  // rank 0 says it
        // The run folder's config.yaml holds every --set of this run, with absolute paths: the hint works
        // from any folder.
        warn("interrupted at step " + std::to_string(r.step) + "; checkpoint " + r.checkpoint +
             "; resume with: performer train --config " +
             run_config_path(std::filesystem::absolute(c.output.dir).lexically_normal().string()) + " --resume auto");
        return kInterruptedExit;
      }
      return r.stop_reason == StopReason::kNonFinite ? 1 : 0;
    };
  });
}

namespace {

// One row of `bench train --csv`, appended (the header first when the file is new or empty).
void append_bench_row(const std::string& path, const std::string& config, const RunConfig& c,
                      const TrainBenchResult& r, double peak_tflops) {
  CsvWriter out(path,
                {"config", "kind", "causal", "layers", "d_model", "length", "precision", "device", "parameters",
                 "tokens_per_step", "seconds_per_step", "tokens_per_second", "flops_per_token", "tflops", "mfu",
                 "peak_bytes", "ranks", "comm_share", "gemm_peak_tflops"},
                /*append=*/true);
  const double tflops = r.flops_per_second() / 1e12;
  CsvRow row;
  row << config << attention_kind_name(c.model.kind) << c.model.causal << c.model.layers << c.model.d_model
      << c.data.max_len << precision_name(r.precision) << c.runtime.device << r.parameters << r.tokens_per_step
      << r.seconds_per_step << r.tokens_per_second << r.flops_per_token << tflops;
  row << tflops / (peak_tflops > 0 ? peak_tflops : r.gemm_peak_tflops);
  out.write(row << r.peak_bytes << r.ranks << r.comm_share << r.gemm_peak_tflops);
}

}  // namespace

constexpr size_t kTopOps = 25;  // operators listed by `bench train --profile`

void add_bench_train(CLI::App& bench, Action& run) {
  auto* cmd = bench.add_subcommand("train", "Tokens/s, model FLOP/s and peak memory of training steps for a config");
  auto config = std::make_shared<std::string>();
  auto sets = std::make_shared<std::vector<std::string>>();
  auto steps = std::make_shared<int64_t>(5);
  auto warmup = std::make_shared<int64_t>(2);
  auto peak_tflops = std::make_shared<double>(0.0);
  auto csv = std::make_shared<std::string>();
  auto profile = std::make_shared<std::string>();
  cmd->add_option("-c,--config", *config, "YAML run configuration")->required();
  cmd->add_option("--set", *sets, "override a key (repeatable)");
  cmd->add_option("--steps", *steps, "timed steps")->capture_default_str();
  cmd->add_option("--warmup", *warmup, "untimed steps first")->capture_default_str();
  cmd->add_option("--peak-tflops", *peak_tflops,
                  "the device's peak TFLOP/s at the run's precision for model FLOPs utilization (e.g. 989 for an "
                  "H100/H200 in bf16, dense); default: the matrix-product peak measured in the same run")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--csv", *csv, "append the figures as one row to this CSV file");
  cmd->add_option("--profile", *profile,
                  "after the timed steps, run as many again under LibTorch's profiler: print the operators taking "
                  "the most time and write the trace (Chrome JSON, for chrome://tracing or Perfetto) to this file");
  auto nproc = std::make_shared<int>(0);
  cmd->add_option("--nproc", *nproc, "measure N local data-parallel processes together (see train --nproc)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([&bench, &run, config, sets, steps, warmup, peak_tflops, csv, profile, nproc] {
    run = [&bench, config, sets, steps, warmup, peak_tflops, csv, profile, nproc] {
      unblock_stop_signals();  // blocked by `--nproc`'s launcher; a benchmark just ends on a signal
      RunConfig c = load_config(*config, *sets);
      if (*nproc > 1) return run_local_ranks(*nproc, c.runtime.timeout_s);
      apply_thread_flag(*bench.get_parent(), c);
      if (!csv->empty()) refuse_overwriting_inputs("--csv", {*csv}, {{"--config", *config}, {"data.train", c.data.train}});
      if (!profile->empty())
        refuse_overwriting_inputs("--profile", {*profile}, {{"--config", *config}, {"data.train", c.data.train}, {"--csv", *csv}});
      TrainBenchResult r = bench_train(c, *steps, *warmup, *profile);
      if (r.rank != 0) return 0;  // rank 0 reports for the job
      std::printf("%s: %s, %.2f M parameters, device %s, %s, %d threads\n", config->c_str(), c.model.describe().c_str(),
                  static_cast<double>(r.parameters) / 1e6, c.runtime.device.c_str(),
                  precision_name(r.precision).c_str(), torch::get_num_threads());
      if (!r.precision_note.empty()) std::printf("%s\n", r.precision_note.c_str());
      std::printf("tokens/s %.0f (real tokens of %lld per step / %.3f s per step, mean over %lld steps after "
                  "%lld warm-up), peak memory %s\n",
                  r.tokens_per_second, static_cast<long long>(r.tokens_per_step), r.seconds_per_step,
                  static_cast<long long>(*steps), static_cast<long long>(*warmup), human_bytes(r.peak_bytes).c_str());
      if (r.ranks > 1)
        std::printf("data-parallel: %d ranks, %d threads each; rank 0 waited on the others %.1f%% of step time (gradient "
                    "sums not hidden by backward, and the per-step agreements)\n",
                    r.ranks, torch::get_num_threads(), 100.0 * r.comm_share);
      std::printf("model FLOPs %.3f GFLOP per token at L %lld (src/train/flops.h) x tokens/s = %.3f TFLOP/s",
                  r.flops_per_token / 1e9, static_cast<long long>(c.data.max_len), r.flops_per_second() / 1e12);
      std::printf(", MFU %.1f%% of the measured %s GEMM peak %.3f TFLOP/s (n = %lld)",
                  100.0 * r.flops_per_second() / 1e12 / r.gemm_peak_tflops, precision_name(r.precision).c_str(),
                  r.gemm_peak_tflops, static_cast<long long>(r.gemm_n));
      if (*peak_tflops > 0) std::printf(", %.1f%% of the given %g TFLOP/s", 100.0 * r.flops_per_second() / 1e12 / *peak_tflops, *peak_tflops);
      std::printf("\n");
      if (!csv->empty()) append_bench_row(*csv, *config, c, r, *peak_tflops);
      if (!profile->empty())
        std::printf("profiled %lld more steps (%.3f s, the profiler's cost included); operators by self time, share of "
                    "that time (trace: %s):\n%s",
                    static_cast<long long>(*steps), r.profiled_s, profile->c_str(),
                    describe_top_ops(r.ops, r.profiled_s, kTopOps).c_str());
      if (!profile->empty() && r.profiled_s > 0) {
        const double products_s = matrix_product_seconds(r.ops), ms_per_step = 1e3 / static_cast<double>(*steps);
        std::printf("matrix products (aten::mm, addmm, bmm, baddbmm, ...): %.1f ms of %.1f ms per step (%.1f%%); the "
                    "rest %.1f ms (everything else, the profiler's own cost included)\n",
                    products_s * ms_per_step, r.profiled_s * ms_per_step, 100.0 * products_s / r.profiled_s,
                    (r.profiled_s - products_s) * ms_per_step);
      }
      return 0;
    };
  });
}

}  // namespace performer::cli
