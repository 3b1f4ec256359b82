// performer bench loader --corpus X [--max-len ...] [--batches N] [--cold] ...
// The options and one call (experiments/loader_bench.h has what is measured).
#include <memory>

#include "cli/commands.h"
#include "data/split_order.h"
#include "experiments/loader_bench.h"

namespace performer::cli {

void add_bench_loader(CLI::App& bench, Action& run) {
  auto* cmd = bench.add_subcommand("loader", "Batches/s and residues/s of batch assembly with masking, warm or cold");
  auto a = std::make_shared<LoaderBench>();
  cmd->add_option("--corpus", a->corpus, "prepared corpus (performer prepare)")->required();
  cmd->add_option("--max-len", a->max_len, "tokens per row (data.max_len)")->capture_default_str();
  cmd->add_option("--tokens-per-batch", a->tokens_per_batch, "token budget per batch (data.tokens_per_batch)")
      ->capture_default_str();
  cmd->add_option("--bucket-window", a->bucket_window, "proteins per length-sorted window (data.bucket_window)")
      ->capture_default_str();
  cmd->add_option("--shuffle-block", a->shuffle_block, "proteins moved together by the epoch order (data.shuffle_block)")
      ->capture_default_str();
  cmd->add_flag("--concat", a->concat, "concatenated chunks (data.concat)");
  cmd->add_option("--batches", a->batches, "batches to assemble")->capture_default_str();
  cmd->add_flag("--cold", a->cold, "drop the corpus from the page cache first");
  cmd->add_option("--seed", a->seed, "order and masking seed")->capture_default_str();
  cmd->add_option("--sample", a->sample, "what an epoch visits (data.sample)")
      ->check(CLI::IsMember(sampling_names()))
      ->capture_default_str();
  cmd->callback([&run, a] { run = [a] { return run_loader_bench(*a); }; });
}

}  // namespace performer::cli
