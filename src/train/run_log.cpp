#include "train/run_log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace performer {

namespace fs = std::filesystem;

namespace {

// On resume: keeps the header and the rows whose step (the column so named) is <= step, so the resumed run
// rewrites what came after its checkpoint. Rewritten whole (AtomicFile), never in place, so a kill at any
// moment leaves either the old or the new file. Read line by line rather than as a CsvTable, because a run
// killed at any moment may have left a missing or damaged header (replaced by `header`) or a cut row
// (dropped, as are blank ones); the rows this project writes hold no quoted line breaks.
void keep_csv_rows_up_to(const std::string& path, const std::string& header, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  const std::vector<std::string> columns = csv_cells(header);
  const size_t step_column = static_cast<size_t>(std::find(columns.begin(), columns.end(), "step") - columns.begin());
  std::string line, kept = header + "\n";
  while (std::getline(in, line)) {
    if (line.empty() || line == header) continue;
    std::vector<std::string> cells;
    try {
      cells = csv_cells(line);
    } catch (const Error&) {
      continue;
    }
    if (cells.size() != columns.size()) continue;
    const std::string& cell = cells[step_column];
    char* end = nullptr;
    const long long row_step = std::strtoll(cell.c_str(), &end, 10);
    if (cell.empty() || *end != '\0') continue;
    if (row_step <= step) kept += line + "\n";
  }
  in.close();
  write_text_file(path, kept);
}

// The columns of a header line.
std::vector<std::string> columns(const char* header) { return csv_cells(header); }

std::string progress_bar(int64_t step, int64_t total, double eta_s) {
  constexpr int kWidth = 30;
  const int filled =
      total > 0 ? static_cast<int>(kWidth * std::min(1.0, static_cast<double>(step) / static_cast<double>(total))) : 0;
  return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(kWidth - filled), ' ') +
         "] " + std::to_string(step) + "/" + std::to_string(total) + " ETA " + human_duration(eta_s);
}

double change(double x, double baseline) { return 100.0 * (x / baseline - 1.0); }

}  // namespace

RunLog::RunLog(const std::string& run_dir, int64_t resumed_at, int64_t total_steps, int64_t log_every, bool progress_bar,
               int rank)
    : total_steps_(total_steps),
      log_every_(log_every),
      first_step_(std::max<int64_t>(resumed_at, 0)),
      tty_(rank == 0 && progress_bar && isatty(STDOUT_FILENO) != 0),
      last_window_loss_(std::nan("")) {
  if (rank > 0) {  // metrics_ and evals_ stay closed: their rows go nowhere
    logger_ = std::make_shared<spdlog::logger>("train", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger_->set_pattern("[%Y-%m-%d %H:%M:%S] [rank " + std::to_string(rank) + "] %v");
    logger_->set_level(spdlog::level::warn);
    return;
  }
  auto console = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>((fs::path(run_dir) / "train.log").string());
  logger_ = std::make_shared<spdlog::logger>("train", spdlog::sinks_init_list{console, file});
  logger_->set_pattern("[%Y-%m-%d %H:%M:%S] %v");
  logger_->flush_on(spdlog::level::info);
  const std::string metrics = (fs::path(run_dir) / "metrics.csv").string();
  const std::string evals = (fs::path(run_dir) / "eval.csv").string();
  if (resumed_at >= 0) {
    keep_csv_rows_up_to(metrics, kMetricsHeader, resumed_at);
    keep_csv_rows_up_to(evals, kEvalHeader, resumed_at);
  }
  metrics_ = CsvWriter(metrics, columns(kMetricsHeader), resumed_at >= 0);
  evals_ = CsvWriter(evals, columns(kEvalHeader), resumed_at >= 0);
}

RunLog::~RunLog() {
  if (tty_) std::printf("\r\033[K");
}

void RunLog::step(const StepRecord& r) {
  metrics_.write(CsvRow() << r.step << r.tokens_seen << r.loss << std::exp(r.loss) << r.lr << r.grad_norm
                          << static_cast<double>(r.real_tokens) / r.seconds << (r.finite ? 0 : 1));
  train_seconds_ += r.seconds;
  window_seconds_ += r.seconds;
  window_tokens_ += r.real_tokens;
  if (r.finite) {
    window_loss_ += r.loss;
    ++window_steps_;
  }
  const double eta = train_seconds_ / static_cast<double>(r.step - first_step_) * static_cast<double>(total_steps_ - r.step);
  if (r.step % log_every_ == 0 || r.step == total_steps_) {
    last_window_loss_ = window_steps_ ? window_loss_ / static_cast<double>(window_steps_) : std::nan("");
    if (tty_) std::printf("\r\033[K");
    logger_->info("step {}/{} loss {:.4f} ppl {:.3f} lr {:.3g} grad {:.3f} {:.0f} tok/s ETA {}", r.step, total_steps_,
                  last_window_loss_, std::exp(last_window_loss_), r.lr, r.grad_norm,
                  static_cast<double>(window_tokens_) / window_seconds_, human_duration(eta));
    window_loss_ = window_seconds_ = 0;
    window_steps_ = window_tokens_ = 0;
  } else if (tty_) {
    std::printf("\r\033[K%s", progress_bar(r.step, total_steps_, eta).c_str());
    std::fflush(stdout);
  }
}

void RunLog::eval(int64_t step, const EvalFigures& e, double unigram) {
  if (tty_) std::printf("\r\033[K");
  if (e.next_token) {  // no masking, so no all-masked figure: those columns stay empty
    evals_.write(CsvRow() << step << e.loss << e.perplexity << e.accuracy << "" << "" << "" << unigram);
    logger_->info("eval step {}: valid next-token perplexity {:.3f} ({:+.1f}% vs unigram {:.3f}), accuracy {:.3f}; {} "
                  "residues of {} sequences", step, e.perplexity, change(e.perplexity, unigram), unigram, e.accuracy,
                  e.predicted, e.sequences);
    return;
  }
  evals_.write(CsvRow() << step << e.loss << e.perplexity << e.accuracy << e.strict_loss << e.strict_perplexity
                      << e.strict_accuracy << unigram);
  logger_->info("eval step {}: valid perplexity {:.3f} ({:+.1f}% vs unigram {:.3f}), accuracy {:.3f}; all-masked "
                "perplexity {:.3f} ({:+.1f}%), accuracy {:.3f}; {} masked positions of {} sequences",
                step, e.perplexity, change(e.perplexity, unigram), unigram, e.accuracy, e.strict_perplexity,
                change(e.strict_perplexity, unigram), e.strict_accuracy, e.predicted, e.sequences);
}

}  // namespace performer
