// performer import --hf DIR --out CKPT [--set model.kind=favor-softmax ...] [--force]
// The options and one call (experiments/hf_job.h).
#include <memory>

#include "cli/commands.h"
#include "experiments/hf_job.h"

namespace performer::cli {

void add_import(CLI::App& app, Action& run) {
  auto job = std::make_shared<ImportJob>();
  auto* cmd = app.add_subcommand("import", "Read a HuggingFace ESM-2 folder (EsmForMaskedLM, safetensors) into a "
                                           "checkpoint, with the attention of your choice");
  cmd->add_option("--hf", job->hf, "HuggingFace model folder: config.json and model.safetensors (or shards)")->required();
  cmd->add_option("--out", job->out, "checkpoint (.h5) to write")->required();
  cmd->add_option("--set", job->sets, "override a config key of the imported model, e.g. --set model.kind=favor-softmax "
                                      "--set model.features=256 (repeatable)");
  cmd->add_flag("--force", job->force, "replace --out when it exists");
  cmd->callback([&run, job] { run = [job] { return run_import_job(*job); }; });
}

}  // namespace performer::cli
