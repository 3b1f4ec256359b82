#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>
#ifdef PERFORMER_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>
#endif

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/batches.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"
#include "train/evaluate.h"
#include "train/memory.h"
#include "train/optimizer.h"
#include "train/run_folder.h"
#include "util/error.h"
#include "util/files.h"
#include "util/hash.h"
#include "util/device.h"
#include "util/process.h"
#include "util/text.h"

namespace performer {

std::atomic<bool> g_stop_training{false};

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr const char* kMetricsHeader = "step,tokens_seen,loss,perplexity,lr,grad_norm,tokens_per_second,skipped";
constexpr const char* kEvalHeader =
    "step,valid_loss,valid_perplexity,valid_accuracy,strict_loss,strict_perplexity,strict_accuracy,unigram_perplexity";

// Seeds of the independent random streams, all derived from runtime.seed.
uint64_t data_seed(const RunConfig& c) { return derive_seed(c.runtime.seed, 0xda7a); }
uint64_t mask_seed(const RunConfig& c) { return derive_seed(c.runtime.seed, 0x3a5c); }

std::shared_ptr<BatchSource> make_source(const Corpus& corpus, const RunConfig& c) {
  BatchOptions bo;
  bo.max_len = c.data.max_len;
  bo.tokens_per_batch = c.data.tokens_per_batch;
  bo.seed = data_seed(c);
  bo.bucket_window = c.data.bucket_window;
  if (c.data.concat) return std::make_shared<ConcatBatches>(corpus, Split::kTrain, bo);
  return std::make_shared<SequenceBatches>(corpus, Split::kTrain, bo);
}

LoaderOptions loader_options(const RunConfig& c) {
  LoaderOptions lo;
  lo.objective = objective_for(c.model.causal);
  lo.masking = MaskingOptions{c.data.mask_rate, c.data.mask_frac, c.data.random_frac};
  lo.mask_seed = mask_seed(c);
  lo.prefetch = static_cast<int>(c.data.prefetch);
  return lo;
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& run_dir) {
  auto console = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>((fs::path(run_dir) / "train.log").string());
  auto logger = std::make_shared<spdlog::logger>("train", spdlog::sinks_init_list{console, file});
  logger->set_pattern("[%Y-%m-%d %H:%M:%S] %v");
  logger->flush_on(spdlog::level::info);
  return logger;
}

// On resume: keeps the header and the rows whose first column (step) is <= step, so the resumed run rewrites
// what came after its checkpoint. Rewritten through "<path>.tmp" and a rename, never in place, so a kill at
// any moment leaves either the old or the new file. A missing or damaged header (a run killed before it
// reached the disk) is replaced by `header`; blank or unreadable rows are dropped.
void keep_csv_rows_up_to(const std::string& path, const std::string& header, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept = header + "\n";
  while (std::getline(in, line)) {
    if (line.empty() || line == header) continue;
    char* end = nullptr;
    const long long row_step = std::strtoll(line.c_str(), &end, 10);
    if (end == line.c_str() || *end != ',') continue;
    if (row_step <= step) kept += line + "\n";
  }
  in.close();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kept;
    if (!out.flush()) throw Error(tmp + ": cannot write (disk full?)");
  }
  rename_durably(tmp, path);
}

// Opens a CSV for appending rows; a new (or empty) file gets the header, written through at once so that
// a kill -9 right after start never leaves a file without it.
std::ofstream open_csv(const std::string& path, const std::string& header, bool append) {
  const bool has_rows = append && fs::exists(path) && fs::file_size(path) > 0;
  std::ofstream out(path, has_rows ? std::ios::app : std::ios::trunc);
  if (!out) throw Error(path + ": cannot write");
  if (!has_rows) out << header << "\n";
  out.flush();
  return out;
}

void set_autocast(const torch::Device& device, const std::string& precision, bool on) {
  if (precision != "bf16") return;
  if (!device.is_cuda())
    throw Error("runtime.precision bf16 is for CUDA (bfloat16 autocast); on CPU use --set runtime.precision=fp32");
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, on);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  if (!on) at::autocast::clear_cache();
#else
  (void)on;
  throw Error("runtime.precision bf16 needs LibTorch >= 2.4 (this build has " TORCH_VERSION ")");
#endif
}

// One optimizer step's forward/backward over micro-batches. Gradients are left in the parameters,
// already divided by the number of predicted positions (masked residues, or next tokens for causal models).
struct StepOutcome {
  double loss = 0;          // mean cross-entropy over the step's predicted positions
  int64_t predicted = 0;
  int64_t real_tokens = 0;
  bool got_batch = false;
};

StepOutcome forward_backward(Encoder& model, DataLoader& loader, const RunConfig& c, const torch::Device& device) {
  StepOutcome o;
  double total = 0;  // micro-batch losses are backpropagated one by one, as sums
  do {
    Batch b;
    if (!loader.next(b)) break;
    o.got_batch = true;
    set_autocast(device, c.runtime.precision, true);
    at::Tensor logits = model(b.inputs.to(device), b.padding_mask.to(device));
    set_autocast(device, c.runtime.precision, false);
    LossSums s = masked_cross_entropy(logits, b.labels.to(device));
    s.loss_sum.backward();
    total += s.loss_sum.item<double>();
    o.predicted += s.count;
    o.real_tokens += b.real_tokens;
  } while (c.train.tokens_per_step > 0 && o.real_tokens < c.train.tokens_per_step);
  if (o.predicted > 0) {
    torch::NoGradGuard g;
    for (auto& p : model->parameters())
      if (p.grad().defined()) p.mutable_grad().div_(static_cast<double>(o.predicted));
    o.loss = total / static_cast<double>(o.predicted);
  }
  return o;
}

std::vector<std::pair<std::string, at::Tensor>> named_params(Encoder& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

std::string progress_bar(int64_t step, int64_t total, double eta_s) {
  const int width = 30;
  const int filled = total > 0 ? static_cast<int>(width * std::min(1.0, static_cast<double>(step) / static_cast<double>(total))) : 0;
  return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), ' ') + "] " +
         std::to_string(step) + "/" + std::to_string(total) + " ETA " + human_duration(eta_s);
}

}  // namespace

std::string training_corpus(const RunConfig& c) {
  const std::string& src = c.data.train;
  if (!fs::exists(src)) throw Error(src + ": data.train does not exist (run scripts/get-data.sh for the real data sets)");
  if (h5::is_hdf5(src)) return src;  // a prepared corpus (checked when loaded)
  struct stat st {};
  ::stat(src.c_str(), &st);
  std::ostringstream key;
  key << fs::absolute(src).string() << "|" << st.st_size << "|" << st.st_mtime << "|" << c.data.valid_frac << "|"
      << c.data.test_frac << "|" << c.data.dedup;
  const std::string cache = (fs::path(c.output.dir) / "corpus.h5").string();
  if (h5::is_hdf5(cache)) {
    try {
      h5::Handle f = h5::open_file(cache);
      if (h5::has_attr(f, "cache_key") && h5::read_attr_string(f, "cache_key") == key.str()) return cache;
    } catch (const Error&) {
      // unreadable cache: rebuilt below
    }
  }
  PrepareOptions po;
  po.inputs = {src};
  po.out = cache;
  po.valid_frac = c.data.valid_frac;
  po.test_frac = c.data.test_frac;
  po.dedup = c.data.dedup;
  po.cache_key = key.str();
  po.force = true;  // our own cache file, rebuilt when unreadable
  po.progress = isatty(STDERR_FILENO) != 0;
  PrepareResult r = prepare_corpus(po);
  spdlog::info("prepared {} -> {}: {} sequences, {} residues in {:.1f}s", src, cache, r.stats.total_sequences(),
               r.stats.total_residues(), r.seconds);
  return cache;
}

TrainResult train(const RunConfig& c, const TrainOptions& opt) {
  // Everything is checked before anything of the run is written, so a failed start leaves the run folder
  // as it was (only the prepared corpus cache may be added); see train/run_folder.h.
  const torch::Device device = resolve_device(c.runtime.device);
  if (c.runtime.threads > 0) torch::set_num_threads(static_cast<int>(c.runtime.threads));
  set_autocast(device, c.runtime.precision, false);  // checks precision against the device before any work
  if (opt.check_memory) check_training_memory(c, device);
  fs::create_directories(c.output.dir);
  RunFolderLock lock(c.output.dir);
  remove_stale_temporaries(c.output.dir);  // "*.tmp-<pid>" of killed runs
  // --overwrite wins over --resume: the user asked to start over.
  std::string resume = opt.overwrite || opt.resume == "auto" ? "" : opt.resume;
  if (!resume.empty() && !fs::exists(resume)) throw Error(resume + ": checkpoint to resume from does not exist");
  if (opt.resume.empty() && !opt.overwrite && holds_run(c.output.dir))  // refused before any work
    throw Error(c.output.dir + ": holds a run (metrics, checkpoints); continue it with --resume auto, or start over "
                "with --overwrite (its files are then moved to " + c.output.dir + "/previous-<time>/)");

  const Corpus corpus = Corpus::load(training_corpus(c), /*with_accessions=*/false);
  const double unigram = corpus.stats().unigram_perplexity_valid;
  // A fresh model (initialized from model.seed) and its optimizer, on the device.
  auto fresh_model = [&] {
    Encoder m(c.model);
    m->to(device);
    m->train();
    return m;
  };
  auto fresh_optimizer = [&](Encoder& m) {
    return AdamW(named_params(m), AdamWOptions{c.train.beta1, c.train.beta2, c.train.eps, c.train.weight_decay});
  };
  Encoder model = fresh_model();
  AdamW optimizer = fresh_optimizer(model);
  const std::string config_yaml = config_to_yaml(c);
  TrainState state;
  std::vector<std::string> skipped;  // checkpoints --resume auto could not use (corrupt, NaN, other model)
  if (opt.resume == "auto" && !opt.overwrite) {
    // The newest checkpoint that loads completely: every tensor read (checksums verified), shapes as the
    // config says, values finite. A damaged one is skipped with a warning and the previous one is used.
    for (const std::string& path : list_checkpoints(c.output.dir)) {
      try {
        state = load_checkpoint(path, model, &optimizer, /*restore_rng=*/true);
        resume = path;
        break;
      } catch (const Error& e) {
        skipped.push_back(e.what());
        std::fprintf(stderr, "warning: %s; trying an older checkpoint\n", e.what());
      }
    }
    if (resume.empty() && !skipped.empty()) {  // a failed load may have filled part of the model: start clean
      model = fresh_model();
      optimizer = fresh_optimizer(model);
    }
  } else if (!resume.empty()) {
    state = load_checkpoint(resume, model, &optimizer, /*restore_rng=*/true);
  }
  state.config_yaml = config_yaml;
  const bool start_over = resume.empty() && holds_run(c.output.dir);
  if (start_over && !opt.overwrite)
    throw Error(c.output.dir + (opt.resume == "auto" ? ": holds a run but no checkpoint that loads completely"
                                                     : ": holds a run (metrics, checkpoints)") +
                "; continue it with --resume auto, or start over with --overwrite (its files are then moved to " +
                c.output.dir + "/previous-<time>/)");

  // Checked: now the run folder is written.
  const std::string moved = start_over ? move_run_aside(c.output.dir) : "";
  std::ofstream(fs::path(c.output.dir) / "config.yaml") << config_yaml;
  auto log = make_logger(c.output.dir);
  if (!moved.empty()) log->info("--overwrite: the previous run's files were moved to {}", moved);
  for (const std::string& s : skipped) log->warn("skipped checkpoint: {}", s);
  log->info("corpus {}: {} train / {} valid sequences; unigram perplexity of valid {:.3f}", corpus.path(),
            corpus.stats().sequences[0], corpus.stats().sequences[1], unigram);
  log->info("model: {} ({:.2f} M parameters), device {}, {} threads", c.model.describe(),
            static_cast<double>(model->num_parameters()) / 1e6, device.str(), torch::get_num_threads());
  if (opt.resume == "auto" && resume.empty() && !opt.overwrite) log->info("--resume auto: no checkpoint in {}, starting from scratch", c.output.dir);
  if (!resume.empty()) log->info("resumed from {} at step {} ({} tokens seen)", resume, state.step, state.tokens_seen);
  model->update_features(state.step);
  const std::string metrics_path = (fs::path(c.output.dir) / "metrics.csv").string();
  const std::string eval_path = (fs::path(c.output.dir) / "eval.csv").string();
  if (!resume.empty()) {
    keep_csv_rows_up_to(metrics_path, kMetricsHeader, state.step);
    keep_csv_rows_up_to(eval_path, kEvalHeader, state.step);
  }
  std::ofstream metrics = open_csv(metrics_path, kMetricsHeader, !resume.empty());
  std::ofstream evals = open_csv(eval_path, kEvalHeader, !resume.empty());

  DataLoader loader(make_source(corpus, c), loader_options(c), state.data);

  EvalSettings es;
  es.max_len = c.data.max_len;
  es.tokens_per_batch = c.data.tokens_per_batch;
  es.concat = c.data.concat;
  es.max_sequences = c.eval.max_sequences;
  es.seed = c.eval.seed;
  es.objective = objective_for(c.model.causal);
  es.masking = MaskingOptions{c.data.mask_rate, c.data.mask_frac, c.data.random_frac};
  EvalSettings strict = es;
  strict.masking = strict_masking(c.data.mask_rate);

  TrainResult result;
  result.unigram_perplexity = unigram;
  result.valid_loss = result.valid_perplexity = result.valid_accuracy = std::nan("");  // until an evaluation ran
  result.strict_perplexity = result.strict_accuracy = std::nan("");
  auto run_eval = [&](int64_t step) {
    EvalResult e = evaluate(model, corpus, Split::kValid, es, device);
    result.valid_loss = e.loss;
    result.valid_perplexity = e.perplexity;
    result.valid_accuracy = e.accuracy;
    if (es.objective == Objective::kNextToken) {  // no masking, so no all-masked figure: those columns stay empty
      result.strict_perplexity = result.strict_accuracy = std::nan("");
      evals << step << ',' << e.loss << ',' << e.perplexity << ',' << e.accuracy << ",,,," << unigram << "\n";
      evals.flush();
      log->info("eval step {}: valid next-token perplexity {:.3f} ({:+.1f}% vs unigram {:.3f}), accuracy {:.3f}; {} "
                "residues of {} sequences", step, e.perplexity, 100.0 * (e.perplexity / unigram - 1.0), unigram,
                e.accuracy, e.predicted, e.sequences);
      return e;
    }
    EvalResult s = evaluate(model, corpus, Split::kValid, strict, device);
    result.strict_perplexity = s.perplexity;
    result.strict_accuracy = s.accuracy;
    evals << step << ',' << e.loss << ',' << e.perplexity << ',' << e.accuracy << ',' << s.loss << ',' << s.perplexity
          << ',' << s.accuracy << ',' << unigram << "\n";
    evals.flush();
    log->info("eval step {}: valid perplexity {:.3f} ({:+.1f}% vs unigram {:.3f}), accuracy {:.3f}; all-masked "
              "perplexity {:.3f} ({:+.1f}%), accuracy {:.3f}; {} masked positions of {} sequences",
              step, e.perplexity, 100.0 * (e.perplexity / unigram - 1.0), unigram, e.accuracy, s.perplexity,
              100.0 * (s.perplexity / unigram - 1.0), s.accuracy, e.predicted, e.sequences);
    return e;
  };
  auto checkpoint = [&](bool best) {
    metrics.flush();  // every row up to a checkpoint's step is on disk before the checkpoint is
    state.data = loader.position();
    const std::string path = best ? (fs::path(c.output.dir) / "best.h5").string() : checkpoint_path(c.output.dir, state.step);
    save_checkpoint(path, model, &optimizer, state);
    if (!best) {
      prune_checkpoints(c.output.dir, c.output.keep_last, /*keep=*/resume);  // the one we resumed from stays
      result.checkpoint = path;
      log->info("checkpoint {}", path);
    }
  };

  result.start_bytes = memory_in_use(device);
  const auto start = Clock::now();
  const int64_t first_step = state.step;
  double train_seconds = 0, window_loss = 0, window_seconds = 0, steady_seconds = 0;
  int64_t window_steps = 0, window_tokens = 0, consecutive_bad = 0, run_tokens = 0, steady_tokens = 0;
  const bool tty = opt.progress_bar && isatty(STDOUT_FILENO) != 0;
  result.stop_reason = "completed";
  while (state.step < c.train.steps) {
    if (g_stop_training.load()) {
      result.stop_reason = "interrupted";
      break;
    }
    if (opt.stop_after > 0 && state.step - first_step >= opt.stop_after) {
      result.stop_reason = "stop_after";
      break;
    }
    if (c.train.max_minutes > 0 && seconds_since(start) > 60.0 * c.train.max_minutes) {
      result.stop_reason = "time limit";
      break;
    }
    const auto t0 = Clock::now();
    optimizer.zero_grad();
    StepOutcome so = forward_backward(model, loader, c, device);
    if (!so.got_batch) throw Error("training data exhausted (empty train split?)");
    const double grad_norm = clip_grad_norm(optimizer.params(), c.train.grad_clip);
    const double lr = learning_rate(state.step, c.train.lr, c.train.warmup_steps, c.train.steps, c.train.schedule);
    const bool finite = std::isfinite(so.loss) && std::isfinite(grad_norm);
    if (finite) {
      optimizer.step(lr);
      consecutive_bad = 0;
    } else {
      optimizer.zero_grad();
      ++consecutive_bad;
      ++state.bad_steps;
      log->warn("step {}: non-finite loss or gradient (loss {}, grad norm {}), step skipped ({} in a row)",
                state.step + 1, so.loss, grad_norm, consecutive_bad);
    }
    ++state.step;
    state.tokens_seen += so.real_tokens;
    model->update_features(state.step);
#ifdef PERFORMER_CUDA
    if (device.is_cuda()) torch::cuda::synchronize();  // step time, not launch time
#endif
    const double dt = seconds_since(t0);
    train_seconds += dt;
    run_tokens += so.real_tokens;
    if (state.step - first_step > opt.timing_warmup) {
      steady_seconds += dt;
      steady_tokens += so.real_tokens;
    }
    window_seconds += dt;
    window_tokens += so.real_tokens;
    if (finite) {
      window_loss += so.loss;
      ++window_steps;
    }
    metrics << state.step << ',' << state.tokens_seen << ',' << so.loss << ',' << std::exp(so.loss) << ',' << lr << ','
            << grad_norm << ',' << static_cast<double>(so.real_tokens) / dt << ',' << (finite ? 0 : 1) << "\n";
    if (consecutive_bad >= c.train.max_bad_steps) {
      metrics.flush();
      checkpoint(false);
      result.stop_reason = "non-finite";
      log->error("{} consecutive steps had a non-finite loss or gradient; stopped. The checkpoint {} holds the last "
                 "good parameters; lower train.lr or raise train.grad_clip before resuming.",
                 consecutive_bad, result.checkpoint);
      break;
    }
    const double eta = (train_seconds / static_cast<double>(state.step - first_step)) * static_cast<double>(c.train.steps - state.step);
    if (state.step % c.output.log_every == 0 || state.step == c.train.steps) {
      metrics.flush();
      const double mean_loss = window_steps ? window_loss / static_cast<double>(window_steps) : std::nan("");
      if (tty) std::printf("\r\033[K");
      log->info("step {}/{} loss {:.4f} ppl {:.3f} lr {:.3g} grad {:.3f} {:.0f} tok/s ETA {}", state.step, c.train.steps,
                mean_loss, std::exp(mean_loss), lr, grad_norm, static_cast<double>(window_tokens) / window_seconds,
                human_duration(eta));
      result.train_loss = mean_loss;
      window_loss = window_seconds = 0;
      window_steps = window_tokens = 0;
    } else if (tty) {
      std::printf("\r\033[K%s", progress_bar(state.step, c.train.steps, eta).c_str());
      std::fflush(stdout);
    }
    if (c.eval.every > 0 && state.step % c.eval.every == 0 && state.step < c.train.steps) {
      EvalResult e = run_eval(state.step);
      if (e.loss < state.best_valid_loss) {
        state.best_valid_loss = e.loss;
        checkpoint(true);
      }
    }
    if (c.output.checkpoint_every > 0 && state.step % c.output.checkpoint_every == 0 && state.step < c.train.steps)
      checkpoint(false);
  }
  if (tty) std::printf("\r\033[K");
  metrics.flush();
  if (result.stop_reason != "non-finite") {
    EvalResult e = run_eval(state.step);
    if (e.loss < state.best_valid_loss) {
      state.best_valid_loss = e.loss;
      checkpoint(true);
    }
    checkpoint(false);
  }
  result.step = state.step;
  result.tokens_seen = state.tokens_seen;
  result.tokens_per_second = train_seconds > 0 ? static_cast<double>(run_tokens) / train_seconds : 0;
  result.steady_tokens_per_second = steady_seconds > 0 ? static_cast<double>(steady_tokens) / steady_seconds : 0;
  result.peak_bytes = peak_memory(device);
  const std::string speed = run_tokens > 0 ? fmt::format("{:.0f} tokens/s (real tokens, forward+backward+update)",
                                                         result.tokens_per_second)
                                           : std::string("no training step in this invocation");
  if (!std::isfinite(result.valid_perplexity))
    log->info("{} at step {}: {}; no finite held-out evaluation", result.stop_reason, state.step, speed);
  else if (es.objective == Objective::kNextToken)
    log->info("{} at step {}: {}; held-out (valid) next-token perplexity {:.3f} ({:+.1f}% vs unigram {:.3f})",
              result.stop_reason, state.step, speed, result.valid_perplexity,
              100.0 * (result.valid_perplexity / unigram - 1.0), unigram);
  else
    log->info("{} at step {}: {}; held-out (valid) perplexity {:.3f} ({:+.1f}% vs unigram {:.3f}), all-masked {:.3f} "
              "({:+.1f}%)",
              result.stop_reason, state.step, speed, result.valid_perplexity,
              100.0 * (result.valid_perplexity / unigram - 1.0), unigram, result.strict_perplexity,
              100.0 * (result.strict_perplexity / unigram - 1.0));
  if (result.stop_reason == "interrupted" || result.stop_reason == "time limit" || result.stop_reason == "stop_after")
    log->info("to continue: performer train --config {}/config.yaml --resume auto", c.output.dir);
  spdlog::drop("train");
  return result;
}

Encoder model_from_checkpoint(const std::string& path, RunConfig& config, const torch::Device& device) {
  config = parse_config(checkpoint_config(path), path + " (stored config)");
  Encoder model(config.model);
  load_checkpoint(path, model, nullptr, false);
  model->to(device);
  model->eval();
  return model;
}

TrainBenchResult bench_train(const RunConfig& c, int64_t steps, int64_t warmup) {
  const torch::Device device = resolve_device(c.runtime.device);
  if (c.runtime.threads > 0) torch::set_num_threads(static_cast<int>(c.runtime.threads));
  check_training_memory(c, device);
  fs::create_directories(c.output.dir);
  const Corpus corpus = Corpus::load(training_corpus(c), false);
  Encoder model(c.model);
  model->to(device);
  model->train();
  AdamW optimizer(named_params(model), AdamWOptions{c.train.beta1, c.train.beta2, c.train.eps, c.train.weight_decay});
  DataLoader loader(make_source(corpus, c), loader_options(c));
  TrainBenchResult r;
  r.parameters = model->num_parameters();
  double seconds = 0;
  int64_t tokens = 0;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    const auto t0 = Clock::now();
    optimizer.zero_grad();
    StepOutcome so = forward_backward(model, loader, c, device);
    clip_grad_norm(optimizer.params(), c.train.grad_clip);
    optimizer.step(c.train.lr);
#ifdef PERFORMER_CUDA
    if (device.is_cuda()) torch::cuda::synchronize();
#endif
    if (i >= warmup) {
      seconds += seconds_since(t0);
      tokens += so.real_tokens;
    }
  }
  r.tokens_per_second = static_cast<double>(tokens) / seconds;
  r.seconds_per_step = seconds / static_cast<double>(steps);
  r.tokens_per_step = tokens / std::max<int64_t>(1, steps);
  r.peak_bytes = peak_memory(device);
  return r;
}

}  // namespace performer
