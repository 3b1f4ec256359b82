// The run configuration: a YAML file with sections data, model, train, eval, output, runtime.
//
// Validation is strict: an unknown key is an error naming it and the nearest valid key; a wrong type or
// an out-of-range value names the key and the allowed range or choices. Every key, its default and a
// one-line meaning are in one schema table (config.cpp), which also drives `performer config --defaults`.
// Overrides: --set section.key=value (value parsed as YAML), applied after the file, validated the same way.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/split_order.h"
#include "model/encoder.h"
#include "train/optimizer.h"
#include "train/world.h"
#include "util/precision.h"

namespace performer {

struct DataConfig {
  std::string train = "data/trembl-sample/DB.fasta.gz";  // prepared corpus (.h5) or FASTA/UniProt file
  double valid_frac = 0.02;       // when data.train is a sequence file: split fractions for the cache
  double test_frac = 0.02;
  bool dedup = true;
  std::string clusters;           // when data.train is a sequence file: cluster TSV (mmseqs2) keying the split
  Sampling sample = Sampling::kProteins;  // an epoch visits every protein, or one member of every cluster
  int64_t max_len = 1024;         // tokens per row incl. <cls>/<eos>; longer proteins are cropped
  int64_t tokens_per_batch = 8192;
  bool concat = false;            // TrEMBL-concat mode: proteins joined and cut into max_len chunks
  double mask_rate = 0.15;
  double mask_frac = 0.8;         // training corruption of selected tokens: <mask> / random / unchanged
  double random_frac = 0.1;       // (evaluation reports these and the all-<mask> corruption)
  int64_t bucket_window = 4096;
  int64_t shuffle_block = 1;      // consecutive corpus proteins the epoch permutation moves together
  int64_t prefetch = 4;
};

struct TrainConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.98;
  double eps = 1e-9;
  double weight_decay = 0.1;      // decoupled (AdamW), on matrices only (not biases, norms, embeddings' bias)
  OptimizerKind optimizer = OptimizerKind::kAdamW;  // adamw, or muon for the blocks' weight matrices
                                  // (train/optimizer.h); train.lr and weight_decay mean the same for both
  double muon_momentum = 0.95;    // Muon's (Nesterov) momentum
  int64_t warmup_steps = 1000;
  Schedule schedule = Schedule::kConstant;  // after warm-up (to 0 at train.steps for linear and cosine)
  int64_t steps = 10000;          // optimizer steps
  int64_t tokens_per_step = 0;    // real tokens per optimizer step, over all data-parallel ranks together
                                  // (gradient accumulation); 0 = one batch per step
  double grad_clip = 0.5;         // max global grad norm; 0 = off
  int64_t max_bad_steps = 10;     // consecutive NaN/Inf steps before stopping
  double max_minutes = 0;         // stop (with a checkpoint) after this wall time; 0 = no limit
  double budget_minutes = 0;      // fit the run into this wall time: once a tenth of it (at most a minute) has
                                  // passed, the measured pace lowers train.steps (never raises it) so that the
                                  // schedule ends in time (train/time_budget.h); 0 = off
};

struct EvalConfig {
  int64_t every = 500;            // steps between evaluations; 0 = only at the end
  int64_t max_sequences = 2000;   // valid sequences (or chunks) evaluated
  uint64_t seed = 1234;           // masking seed of the evaluation sample
  double mask_rate = 0;           // share of tokens masked in evaluations; 0 = data.mask_rate (the training
                                  // rate). Set it (0.15) to train at another rate and still report the
                                  // standard masked perplexity.
};

struct OutputConfig {
  std::string dir = "runs/default";
  int64_t checkpoint_every = 1000;  // steps; 0 = only at the end
  int64_t keep_last = 3;
  int64_t log_every = 10;
};

struct RuntimeConfig {
  std::string device = "auto";    // auto | cpu | cuda
  int64_t threads = 0;            // 0 = all cores
  uint64_t seed = 0;              // model init, data order, masking, features (derived per use)
  Precision precision = Precision::kFp32;  // util/precision.h: fp32, bf16 (autocast) or auto (measured)
  Backend backend = Backend::kAuto;       // data-parallel collectives: auto (NCCL on CUDA, else Gloo), gloo, nccl
  double bucket_mb = 4;                   // data-parallel gradient sums: MB per all-reduce bucket (smaller buckets
                                          // start during backward sooner, larger ones cost fewer collectives)
  double timeout_s = 1800;                // a rank waiting longer than this on the others (a collective, the
                                          // rendezvous) stops with an error naming the ranks that did not answer
};

struct RunConfig {
  DataConfig data;
  EncoderConfig model;
  TrainConfig train;
  EvalConfig eval;
  OutputConfig output;
  RuntimeConfig runtime;
};

// The masking rate of a run's evaluations (the valid split during training and `performer eval`).
double eval_mask_rate(const RunConfig& config);

// Loads a YAML file (and applies "section.key=value" overrides). Errors name the file, the key and the line.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Parses YAML text (for tests and for configs stored in checkpoints); `origin` names it in errors.
RunConfig parse_config(const std::string& yaml_text, const std::string& origin,
                       const std::vector<std::string>& overrides = {});
// train.optimizer of a config stored in a checkpoint (adamw where the key is absent: written before Muon);
// reads that one key only, so a config of another version still answers.
OptimizerKind stored_optimizer(const std::string& yaml_text, const std::string& origin);
// The complete resolved configuration as YAML (every key), loadable by parse_config.
std::string config_to_yaml(const RunConfig& config);
// Every key with its default and meaning, one per line, grouped by section.
std::string config_defaults_text();

}  // namespace performer
