// `performer scaling`: a small isoFLOP study. Held-out masked perplexity against training compute for
// models of several sizes, each trained for a fixed budget of model FLOPs (train/flops.h).
//
// A run is (budget C, shape layers x d_model, learning rate). Its config is the base config with
//   model.layers, model.d_model        the shape
//   model.heads                        d_model / the base's d_head (the head width stays)
//   model.d_ff                         d_model x the base's d_ff / d_model (the ratio stays)
//   train.steps                        ceil(C / (FLOPs per token at data.max_len x tokens per step)), tokens
//                                      per step = train.tokens_per_step (accumulation) or data.tokens_per_batch
//   train.warmup_steps                 min(the base's, steps / 10); the base's schedule decays to steps
//   train.lr                           see below
//   train.max_minutes = train.budget_minutes = 0, one evaluation and one checkpoint at the end
// Learning rates: at the smallest budget every shape runs with every --lrs value; each shape then keeps the
// one with the lowest valid perplexity for the larger budgets (chosen on valid, never on --query).
// Every run trains in a child process (`performer scaling-run`, through experiments/cell.h), then is
// evaluated by `performer eval`'s code in fp32: the prepared corpus's valid split and, with --query, the
// proteins of that file not identical to a training protein, both with 95% bootstrap intervals.
// A run's FLOPs are counted from its real tokens (FLOPs per token x tokens seen), so they sit a little
// under the budget (padding is not counted).
//
// Output in --out: results.csv (rewritten after every run), one folder per run (config, train.log,
// valid/ and query/ summaries, cell.log, result.yaml, checkpoint), scaling.png (held-out loss in nats
// against FLOPs: one line per shape, the frontier of the best run per budget, and the published points),
// and fit.txt: the frontier's power law, the compute-optimal size per budget (isoFLOP parabola,
// analysis/scaling_fit.h) and its power law in C.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "experiments/cell.h"
#include "train/config.h"

namespace performer {

struct ScalingShape {
  int64_t layers = 0, d_model = 0;
  std::string name() const;  // "4x128"
};
// "2x96,4x128": each LAYERSxD_MODEL with positive whole numbers; an Error names `what` and the item.
std::vector<ScalingShape> parse_shapes(const std::string& text, const std::string& what);
// "1e13,3e13": positive finite numbers; an Error names `what` and the item.
std::vector<double> parse_number_list(const std::string& text, const std::string& what);

struct ScalingOptions {
  std::vector<double> budgets{1e13, 3e13, 1e14};  // model FLOPs per run
  std::vector<ScalingShape> shapes{{2, 96}, {4, 128}, {4, 192}, {6, 256}};
  std::vector<double> lrs;     // swept at the smallest budget; empty = the config's train.lr
  std::string query;           // held-out proteins (FASTA / UniProt); "" = valid only
  std::string out;             // output folder
  std::string executable;      // the performer binary that runs the children
  bool resume = false;         // keep finished runs of out/results.csv (same budget, shape, lr, steps, precision)
  double run_timeout = 0;      // seconds before a run is killed and reported TIMEOUT; 0 = none
};

struct ScalingRun {
  double budget = 0;
  ScalingShape shape;
  double lr = 0;
  CellStatus status = CellStatus::kOk;
  std::string note;
  int64_t parameters = 0, steps = 0, tokens = 0;
  double flops = 0;            // FLOPs per token x real tokens seen
  double seconds = 0;          // training wall time (evaluations and checkpoints excluded)
  double tokens_per_second = 0;
  double valid_perplexity = 0, valid_low = 0, valid_high = 0, valid_all_masked = 0;
  double query_perplexity = 0, query_low = 0, query_high = 0, query_all_masked = 0;  // NaN without --query
  std::string precision = "fp32";
  std::string dir;
  std::string name() const;    // "C1e+13-4x128-lr0.003"
};

// The configuration of one run (see the header comment); an Error when d_model is not a multiple of the
// base's d_head.
RunConfig scaling_run_config(const RunConfig& base, double budget, const ScalingShape& shape, double lr,
                             const std::string& dir);

// Child side: trains the run `config` and evaluates it (valid split of config.data.train, and `query` when
// not empty); the report's figures are those of ScalingRun.
CellReport run_scaling_child(const RunConfig& config, const std::string& query);

// Runs the study (progress and the final table printed), writes results.csv, fit.txt and scaling.png.
std::vector<ScalingRun> run_scaling(const RunConfig& base, const ScalingOptions& options);

// Published reference points on the plot's axes (loss in nats per masked residue, FLOPs):
// the Cheng et al. (2024) MLM loss-compute law and nanoprot's esm2-XS run.
double published_mlm_loss(double flops);

}  // namespace performer
