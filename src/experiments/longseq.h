// `performer longseq`: the concatenated long-sequence experiment (TrEMBL-concat) as a sweep over
// sequence lengths L and attention kinds.
//
// Every cell trains the same model (the base config with model.kind = kind and data.max_len =
// model.max_len = L, concat mode on, same seed) for the same number of steps on proteins joined with
// <eos> and cut into chunks of exactly L tokens, then evaluates masked perplexity/accuracy on the same
// prefix of the concatenated valid stream (eval_tokens tokens, i.e. eval_tokens / L chunks).
//
// Each cell runs in a fresh child process (`performer longseq-cell`, through the harness of
// experiments/cell.h) so that its peak memory is its own and running out of memory ends the cell, not the
// sweep; the child reports its figures as a YAML document (<cell>/result.yaml). Before a cell starts, its memory need is
// predicted (train/memory.h); a prediction above the limit reports the cell as OOM without
// running it. The child enforces the limit itself (CPU: address-space limit above its start-up size;
// CUDA: the caching allocator's memory fraction), and an allocation failure is reported as OOM.
//
// Figures per cell: tokens/s after `timing_warmup` steps (real tokens / step wall time; evaluation and
// checkpoints excluded), peak memory (CPU: peak RSS of the cell process, start-up footprint of the binary
// included, and so are the prediction and the limit; CUDA: max allocated), memory at
// the start of training (model, optimizer state, data), the final training loss (mean of the last log
// window), valid perplexity/accuracy (standard 80/10/10 corruption) and the all-masked figures.
// Output in --out: results.csv (rewritten after every cell), one folder per cell (config, train.log,
// metrics.csv, eval.csv, cell.log, result.yaml, checkpoint), tokens_per_second.png, peak_memory.png and
// perplexity_L<L>.png (valid perplexity vs steps per kind at the longest length, and at the longest length
// where every kind ran when that differs).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "experiments/cell.h"
#include "model/attention.h"
#include "train/config.h"

namespace performer {

struct LongseqOptions {
  std::vector<int64_t> lengths{1024, 2048, 4096, 8192, 16384};
  std::vector<AttentionKind> kinds{AttentionKind::kExact, AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu};
  int64_t steps = 0;            // 0 = the config's train.steps
  int64_t timing_warmup = 3;    // steps left out of tokens/s
  int64_t eval_tokens = 32768;  // valid tokens per evaluation (same residues at every L)
  uint64_t memory_limit = 0;    // bytes per cell; 0 = 90% of RAM (CPU) or of the GPU's memory (CUDA)
  bool predict = true;          // false: run every cell, relying on the limit alone (for tests)
  bool resume = false;          // keep the finished cells (ok with the same steps, or OOM) of out/results.csv
  double cell_timeout = 7200;   // seconds a cell may run before it is killed and reported TIMEOUT; 0 = none
  std::string out;              // output folder (replaces output.dir)
  std::string executable;       // the performer binary that runs the cells
};

struct LongseqCell {
  int64_t length = 0;
  AttentionKind kind = AttentionKind::kExact;
  CellStatus status = CellStatus::kOk;
  std::string note;  // why a cell is OOM or failed
  int64_t rows = 0, tokens_per_step = 0, steps = 0;
  double tokens_per_second = 0;
  double peak_bytes = 0, start_bytes = 0, predicted_bytes = 0;
  double final_loss = 0, valid_perplexity = 0, valid_accuracy = 0, strict_perplexity = 0, strict_accuracy = 0;
  double seconds = 0;         // wall time of the cell, start-up and evaluation included
  std::string precision = "fp32";  // runtime.precision the cell ran in (auto resolved by the sweep)
  std::string dir;
};

// The configuration of one cell (see the header comment).
RunConfig longseq_cell_config(const RunConfig& base, int64_t length, AttentionKind kind, int64_t steps,
                              int64_t eval_tokens, const std::string& cell_dir);

// Child side: trains one cell (memory limit applied first), catches out-of-memory, and returns the figures.
LongseqCell run_longseq_cell(const RunConfig& config, uint64_t memory_limit, int64_t timing_warmup);
// The child's report of a cell (status, note; figures tokens_per_second, peak_bytes, start_bytes, final_loss,
// valid_perplexity, valid_accuracy, strict_perplexity, strict_accuracy, rows, steps: NaN all-masked figures
// for a causal cell) and the parent's reading of it into the cell (an Error for a missing figure).
CellReport longseq_cell_report(const LongseqCell& cell);
void apply_longseq_report(const CellReport& report, LongseqCell& cell);

// Runs the sweep (printing progress and the final table), writes results.csv and the plots; returns the cells.
std::vector<LongseqCell> run_longseq(const RunConfig& base, const LongseqOptions& options);

void write_longseq_csv(const std::string& path, const std::vector<LongseqCell>& cells, const std::string& device);
// Cells of a results.csv (empty when the file does not exist); a malformed row is an error naming the row.
std::vector<LongseqCell> read_longseq_csv(const std::string& path);
// (step, valid perplexity) rows of a cell's eval.csv; empty when missing.
std::vector<std::pair<int64_t, double>> read_eval_curve(const std::string& cell_dir);

}  // namespace performer
