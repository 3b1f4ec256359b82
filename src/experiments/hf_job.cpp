#include "experiments/hf_job.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "interop/hf_esm.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/files.h"

namespace fs = std::filesystem;

namespace performer {

namespace {
void refuse_existing(const std::string& path, bool force, const std::string& what) {
  if (fs::exists(path) && !force) throw Error(path + ": already exists; pass --force to replace it with the " + what);
}
}  // namespace

int run_export_job(const ExportJob& job) {
  if (job.format != "hf") throw Error("--format " + job.format + ": expected hf");
  if (job.out.empty()) throw Error("--out: the folder to write is required");
  if (!fs::exists(job.checkpoint)) throw Error(job.checkpoint + ": checkpoint does not exist");
  refuse_existing(job.out, job.force, "export");
  // --force replaces --out whole: never when the checkpoint is --out or lies inside it.
  refuse_overwriting_inputs("--out", {job.out}, {{"--checkpoint", job.checkpoint}});
  if (fs::is_directory(job.out)) {
    const fs::path ckpt = fs::weakly_canonical(job.checkpoint);
    fs::path out = fs::weakly_canonical(job.out);
    if (!out.has_filename()) out = out.parent_path();  // "dir/" as "dir"
    if (std::mismatch(out.begin(), out.end(), ckpt.begin(), ckpt.end()).first == out.end())
      throw Error("--out " + job.out + ": holds the checkpoint " + job.checkpoint + ", which --force would delete");
  }
  RunConfig config;
  Encoder model = model_from_checkpoint(job.checkpoint, config, torch::kCPU);
  if (std::string why = hf_export_blocker(config.model); !why.empty())
    throw Error(job.checkpoint + ": no EsmForMaskedLM equivalent: " + why);
  // Written into a temporary folder beside `out`, then renamed: an error leaves no half-written export.
  const fs::path out = fs::absolute(job.out).lexically_normal();
  const fs::path tmp = temporary_for(out.string());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write_hf_esm(tmp.string(), model, job.checkpoint);
    for (const auto& e : fs::directory_iterator(tmp)) fsync_path(e.path().string());
    if (fs::exists(out)) {
      // The previous export is moved aside, and put back if the new one cannot take its place.
      const fs::path old = temporary_for(out.string() + ".old");
      fs::rename(out, old);
      try {
        rename_durably(tmp.string(), out.string());
      } catch (...) {
        std::error_code ec;
        fs::rename(old, out, ec);
        throw;
      }
      fs::remove_all(old);
    } else {
      rename_durably(tmp.string(), out.string());
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  std::printf("exported %s -> %s (EsmForMaskedLM, %s attention in training; transformers runs exact softmax)\n",
              job.checkpoint.c_str(), job.out.c_str(), attention_kind_name(config.model.kind).c_str());
  return 0;
}

int run_import_job(const ImportJob& job) {
  if (job.out.empty()) throw Error("--out: the checkpoint to write is required");
  refuse_existing(job.out, job.force, "import");
  const fs::path hf(job.hf);
  refuse_overwriting_inputs("--out", {job.out}, {{"--hf", (hf / "config.json").string()},
                                                 {"--hf", (hf / "model.safetensors").string()},
                                                 {"--hf", (hf / "model.safetensors.index.json").string()}});
  HfEsmFolder folder = read_hf_esm(job.hf);
  // The folder's shape as a run config, then the user's overrides (the attention kind, features, ...).
  RunConfig base;
  base.model = folder.model;
  base.data.max_len = std::min(base.data.max_len, folder.model.max_len);
  RunConfig config = parse_config(config_to_yaml(base), job.hf + " (imported config)", job.sets);
  Encoder model(config.model);
  load_hf_weights(model, folder.weights, job.hf);
  TrainState state;
  state.config_yaml = config_to_yaml(config);
  save_checkpoint(job.out, model, nullptr, state);
  for (const auto& note : folder.notes) std::printf("note: %s\n", note.c_str());
  std::printf("imported %s -> %s: %s\n", job.hf.c_str(), job.out.c_str(), config.model.describe().c_str());
  return 0;
}

}  // namespace performer
