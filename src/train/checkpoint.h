// Training checkpoints in one HDF5 file each:
//
//   /model/<parameter name>          float32, the parameter's shape ("layers.3.attn.q_proj.weight", ...)
//   /buffers/<buffer name>           random feature matrices ("layers.3.attn.projection", float32) and
//                                    their draw numbers ("layers.3.attn.feature_draw", int64)
//   /optimizer/exp_avg/<name>        AdamW first moments (a Muon matrix: its momentum), float32
//   /optimizer/exp_avg_sq/<name>     AdamW second moments (a Muon matrix: 0), float32
//   /rng/torch_cpu                   uint8, the LibTorch CPU generator state (dropout)
//   attributes of /: format = "performer-checkpoint", format_version = 1, step, tokens_seen,
//                    data_epoch, data_index, best_valid_loss, bad_steps, config (the resolved YAML),
//                    corpus_fingerprint and corpus (the training corpus's content fingerprint and its
//                    description; resuming on another corpus is refused), libtorch_version, created
//
// Every dataset is stored with HDF5's Fletcher-32 checksum, so changed bytes make the read fail (files
// written before the checksums remain readable). Written whole or not at all (util/files.h AtomicFile:
// "<path>.tmp-<pid>", flushed, closed, renamed over <path>): a crash never leaves a half-written checkpoint under a checkpoint's name. Loading
// checks format, version, every shape against the model built from the config and that every value is
// finite, with one-line errors naming the file and the tensor; every dataset's size is checked against what
// it must be before it is read, and any failure while loading (out of memory included) is an Error
// naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/loader.h"
#include "model/encoder.h"
#include "train/optimizer.h"

namespace performer {

struct TrainState {
  int64_t step = 0;             // optimizer steps completed
  int64_t tokens_seen = 0;      // real tokens consumed
  DataPosition data;            // next batch of the training stream
  double best_valid_loss = 1e300;
  int64_t bad_steps = 0;        // NaN/Inf steps skipped so far
  int64_t planned_steps = 0;    // the steps train.budget_minutes planned (train/time_budget.h); 0 = none yet
  std::string config_yaml;
  std::string corpus_fingerprint;  // Corpus::fingerprint() of the training corpus ("" in older checkpoints)
  std::string corpus_description;  // its path and split sizes, for messages
};

void save_checkpoint(const std::string& path, Encoder& model, Optimizer* optimizer, const TrainState& state);

// Loads parameters and buffers into `model` (which must be built from the same config), the optimizer
// state when `optimizer` is given, and returns the training state. Restores the CPU RNG when asked.
TrainState load_checkpoint(const std::string& path, Encoder& model, Optimizer* optimizer, bool restore_rng);

// Loads the weights of a checkpoint into `model` to start a new run from them (fine-tuning, train --init):
// every parameter, by name and shape, and the buffers other than the random features (those stay as the
// model drew them, so the checkpoint may have been trained with another attention kind). Returns its step.
int64_t load_model_weights(const std::string& path, Encoder& model);

// The resolved config stored in a checkpoint (to rebuild its model without the original YAML).
std::string checkpoint_config(const std::string& path);
// The number of optimizer steps a checkpoint was written after.
int64_t checkpoint_step(const std::string& path);

// Checkpoints "ckpt-<step>.h5" of a run folder, newest first.
std::vector<std::string> list_checkpoints(const std::string& dir);
// The newest checkpoint in dir that opens and has the checkpoint format; "" if none. Unreadable ones
// are skipped with a warning on stderr.
std::string newest_valid_checkpoint(const std::string& dir);
std::string checkpoint_path(const std::string& dir, int64_t step);
// Deletes all but the newest keep_last step checkpoints (best.h5 is separate and kept), and never `keep`
// (the checkpoint a run resumed from: the newest known to load cleanly).
void prune_checkpoints(const std::string& dir, int64_t keep_last, const std::string& keep = "");

}  // namespace performer
