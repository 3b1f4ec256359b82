// The record of a training run (util/log.h has the convention): the console and <run>/train.log through a
// time-stamped spdlog logger, metrics.csv (one row per step), eval.csv (one row per evaluation), a
// progress bar between log lines on a terminal, and the means over each log window.
//
// Durability: each CSV gets its header at once (a kill -9 right after start never leaves a file without
// it), and every row is written through as it comes (io/csv.h), so every row up to a checkpoint's step is
// on disk before the checkpoint is. On resume, rows after the checkpoint's step are dropped (they are
// written again).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "io/csv.h"

namespace performer {

// One optimizer step, as logged.
struct StepRecord {
  int64_t step = 0, tokens_seen = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  int64_t real_tokens = 0;  // of this step
  double seconds = 0;       // of this step
  bool finite = true;       // false: skipped (NaN/Inf loss or gradient)
};

// One evaluation of the valid split: standard masking (or next-token), and all-masked (NaN for causal models).
struct EvalFigures {
  double loss = 0, perplexity = 0, accuracy = 0;
  double strict_loss = 0, strict_perplexity = 0, strict_accuracy = 0;
  int64_t predicted = 0, sequences = 0;
  bool next_token = false;  // a causal model: no all-masked figures
};

class RunLog {
 public:
  // Opens train.log (appended), metrics.csv and eval.csv in run_dir; `resumed_at` >= 0 keeps the rows up to
  // that step, -1 starts new files. A data-parallel rank other than 0 (`rank` > 0) writes no file: its
  // warnings and errors go to stderr, prefixed "[rank N]", and the rest is rank 0's to record.
  RunLog(const std::string& run_dir, int64_t resumed_at, int64_t total_steps, int64_t log_every, bool progress_bar,
         int rank = 0);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  spdlog::logger& log() { return *logger_; }
  // A metrics row; every log_every steps (and at the last) a console line with the window's means, else
  // the progress bar.
  void step(const StepRecord& r);
  // An eval.csv row and its console line, against the unigram perplexity of the same split.
  void eval(int64_t step, const EvalFigures& e, double unigram);
  double last_window_loss() const { return last_window_loss_; }  // mean loss of the last logged window
  void set_total_steps(int64_t steps) { total_steps_ = steps; }   // train.steps as a time budget planned them

  static constexpr const char* kMetricsHeader = "step,tokens_seen,loss,perplexity,lr,grad_norm,tokens_per_second,skipped";
  static constexpr const char* kEvalHeader =
      "step,valid_loss,valid_perplexity,valid_accuracy,strict_loss,strict_perplexity,strict_accuracy,unigram_perplexity";

 private:
  std::shared_ptr<spdlog::logger> logger_;
  CsvWriter metrics_, evals_;  // rows written through as they come
  int64_t total_steps_, log_every_, first_step_;
  bool tty_;
  double train_seconds_ = 0;  // this invocation, for the ETA
  double window_loss_ = 0, window_seconds_ = 0, last_window_loss_;
  int64_t window_steps_ = 0, window_tokens_ = 0;
};

}  // namespace performer
