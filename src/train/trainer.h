// `performer train`: training of the encoder from a RunConfig, with the masked-LM objective for
// bidirectional models and next-token prediction for causal ones (model.causal; data/masking.h).
//
// One optimizer step = micro-batches until train.tokens_per_step real tokens (or one batch), loss summed
// over the predicted positions (masked residues; or every residue and <eos> of a causal model) and divided
// by their count, gradient clipping, the optimizer (AdamW or Muon) at the scheduled rate, then a feature
// redraw when due. Every eval.every steps: perplexity/accuracy on a fixed sample of the valid split
// (masked, standard and all-masked; or next-token over the residues for causal models) beside the
// unigram baseline.
// Checkpoints (train/checkpoint.h) every output.checkpoint_every steps, at the end, on SIGINT/SIGTERM (after the current step), at train.max_minutes, and when
// train.max_bad_steps consecutive steps had a NaN/Inf loss or gradient (those steps are skipped).
// The run folder holds config.yaml, train.log, metrics.csv (one row per step), eval.csv, ckpt-*.h5, best.h5.
#pragma once
#include <memory>
#include <string>

#include <torch/types.h>

#include "data/batches.h"
#include "data/corpus.h"
#include "model/encoder.h"
#include "train/config.h"
#include "train/stop_policy.h"
#include "util/op_profile.h"

namespace performer {

struct TrainOptions {
  std::string resume;        // "", "auto" (newest valid checkpoint in the run folder) or a checkpoint path
  std::string init;          // a checkpoint whose weights a new run starts from (fine-tuning; an imported
                             // model): step 0, a fresh optimizer; ignored when the run resumes
  bool overwrite = false;    // start over in a folder that holds a run (its files moved aside; train/run_folder.h)
  int64_t stop_after = 0;    // stop (with a checkpoint) after this many steps in this invocation; 0 = no
  bool progress_bar = true;  // a redrawn bar when stdout is a terminal
  int64_t timing_warmup = 0; // steps of this invocation left out of steady_tokens_per_second
  bool check_memory = true;  // refuse a run whose predicted memory exceeds the device's (train/memory.h)
  bool allow_corpus_change = false;  // resume on a corpus other than the checkpoint's (refused otherwise)
};

struct TrainResult {
  int64_t step = 0;
  int64_t tokens_seen = 0;
  double train_loss = 0;          // mean over the last log window (NaN before the first log line)
  double tokens_per_second = 0;   // real tokens / training wall time (eval and checkpoints excluded)
  double steady_tokens_per_second = 0;  // the same after the first TrainOptions::timing_warmup steps
  double start_bytes = 0;         // memory in use before the first step (CPU: RSS; CUDA: allocated)
  double peak_bytes = 0;          // peak memory of the run (CPU: peak RSS; CUDA: max allocated)
  double valid_loss = 0, valid_perplexity = 0, valid_accuracy = 0;  // standard 80/10/10 masking, or next-token
  double strict_perplexity = 0, strict_accuracy = 0;                 // every selected residue masked (NaN: causal)
  double unigram_perplexity = 0;  // of the valid split under train frequencies (corpus statistics)
  double comm_seconds = 0;        // data-parallel: waiting on the other ranks (in tokens_per_second's time)
  std::string checkpoint;         // last written (by rank 0 in a data-parallel run)
  bool primary = true;            // false on data-parallel ranks other than 0 (they report nothing)
  StopReason stop_reason = StopReason::kCompleted;
};

// The corpus a config trains on: data.train itself when it is a prepared corpus, else the cache
// "<run>/corpus.h5" (data/corpus_cache.h).
std::string training_corpus(const RunConfig& config);

// The training stream's batches of a corpus under data.* and runtime.seed (what `train` walks).
std::shared_ptr<BatchSource> training_batches(const Corpus& corpus, const DataConfig& data, uint64_t seed);

TrainResult train(const RunConfig& config, const TrainOptions& options);

// The model stored in a checkpoint, rebuilt from the checkpoint's own config (returned in `config`),
// with its parameters and feature matrices loaded, in eval mode on `device`.
Encoder model_from_checkpoint(const std::string& path, RunConfig& config, const torch::Device& device);

// `performer bench train`: tokens/s and peak memory of training steps for a config (no checkpoints), set
// up exactly as train() sets up a fresh run.
struct TrainBenchResult {
  double tokens_per_second = 0, seconds_per_step = 0, peak_bytes = 0;
  int64_t parameters = 0, tokens_per_step = 0;
  double flops_per_token = 0;  // training FLOPs per token at data.max_len (train/flops.h)
  int ranks = 1, rank = 0;     // data-parallel: the job's ranks (tokens are the job's, over all ranks)
  double comm_share = 0;       // share of step time this rank waited on the others after its backward
  Precision precision = Precision::kFp32;  // the precision the steps ran in (auto resolved)
  std::string precision_note;              // the probe's line (util/precision.h); "" for fp32 asked for
  // The device's measured matrix-product peak at that precision, TFLOP/s: the best of repeated square
  // products (n = kBenchGemmN on CPU, 4096 on CUDA) on the run's threads, measured after the steps.
  double gemm_peak_tflops = 0;
  int64_t gemm_n = 0;
  double flops_per_second() const { return tokens_per_second * flops_per_token; }
  // With a profile path: the timed steps' operators by self time (util/op_profile.h), over `profiled_s`.
  std::vector<OpTime> ops;
  double profiled_s = 0;
};
constexpr int64_t kBenchGemmN = 2048;
// `profile`: when not empty, `steps` more steps after the timed ones run under LibTorch's profiler, and its
// trace is written there (the timed figures are not slowed by the profiler).
TrainBenchResult bench_train(const RunConfig& config, int64_t steps, int64_t warmup, const std::string& profile = "");

}  // namespace performer
