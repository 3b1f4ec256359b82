// performer export --checkpoint CKPT --format hf --out DIR [--force]
// The options and one call (experiments/hf_job.h).
#include <memory>

#include "cli/commands.h"
#include "experiments/hf_job.h"

namespace performer::cli {

void add_export(CLI::App& app, Action& run) {
  auto job = std::make_shared<ExportJob>();
  auto* cmd = app.add_subcommand("export", "Write a checkpoint as a HuggingFace EsmForMaskedLM folder (safetensors, "
                                           "config.json, tokenizer files)");
  cmd->add_option("--checkpoint", job->checkpoint, "checkpoint (.h5) of an ESM-shaped model (model.lm_head: esm, "
                                                    "rotary positions)")->required();
  cmd->add_option("--format", job->format, "hf (HuggingFace transformers)")->check(CLI::IsMember({"hf"}))->capture_default_str();
  cmd->add_option("--out", job->out, "folder to create")->required();
  cmd->add_flag("--force", job->force, "replace --out when it exists");
  cmd->callback([&run, job] { run = [job] { return run_export_job(*job); }; });
}

}  // namespace performer::cli
