#include "train/trainer.h"

#include <ATen/record_function.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <torch/version.h>
#ifdef PERFORMER_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <torch/cuda.h>
#endif

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <tuple>

#include "data/batches.h"
#include "data/loader.h"
#include "data/corpus_cache.h"
#include "train/checkpoint.h"
#include "train/communicator.h"
#include "train/gradient_sync.h"
#include "model/loss.h"
#include "train/evaluate.h"
#include "train/flops.h"
#include "train/memory.h"
#include "train/optimizer.h"
#include "train/replicas.h"
#include "train/run_folder.h"
#include "train/run_log.h"
#include "train/time_budget.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/files.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/names.h"
#include "util/process.h"
#include "util/text.h"
#include "util/device.h"

namespace performer {

namespace fs = std::filesystem;

namespace {


// Seeds of the independent random streams, all derived from runtime.seed.
uint64_t data_seed(uint64_t seed) { return derive_seed(seed, 0xda7a); }
uint64_t mask_seed(uint64_t seed) { return derive_seed(seed, 0x3a5c); }
// Dropout draws from LibTorch's global generators (CPU and CUDA), seeded afresh before each micro-batch
// from (seed, epoch, batch): its masks are a function of the batch alone, the same whichever rank of a
// data-parallel job computes it, however many ranks there are, and after any resume.
void seed_dropout(uint64_t seed, const Batch& b) {
  torch::manual_seed(derive_seed(seed, 0xd80f, static_cast<uint64_t>(b.epoch), static_cast<uint64_t>(b.index)));
}


LoaderOptions loader_options(const DataConfig& d, bool causal, uint64_t seed) {
  LoaderOptions lo;
  lo.objective = objective_for(causal);
  lo.masking = MaskingOptions{d.mask_rate, d.mask_frac, d.random_frac};
  lo.mask_seed = mask_seed(seed);
  lo.prefetch = static_cast<int>(d.prefetch);
  return lo;
}

void synchronize(const torch::Device& device) {
#ifdef PERFORMER_CUDA
  if (device.is_cuda()) torch::cuda::synchronize();  // step time, not launch time
#else
  (void)device;
#endif
}

std::vector<std::pair<std::string, at::Tensor>> named_params(Encoder& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

// The device of a run and its place in a data-parallel job, with the thread count, precision and
// predicted memory checked before any work. Each rank of a job uses GPU `local_rank`, and on CPU the
// machine's cores are shared out among the ranks on it unless runtime.threads says otherwise.
struct Runtime {
  torch::Device device;
  std::unique_ptr<Communicator> comm;  // heap: the gradient hooks keep its address
  PrecisionChoice precision;           // resolved: fp32 or bf16, with the probe's line
};

// runtime.precision resolved on this rank's device, with the rank's threads (util/precision.h). The ranks
// of a job agree: auto takes bf16 only where every rank measured it faster, so no rank rounds otherwise.
PrecisionChoice agreed_precision(Precision requested, const torch::Device& device, Communicator& comm) {
  PrecisionChoice p = choose_precision(requested, device);
  if (!comm.distributed()) return p;
  if (requested == Precision::kAuto) {
    std::vector<double> bf16{p.precision == Precision::kBf16 ? 1.0 : 0.0};
    comm.min(bf16);
    if (bf16[0] == 0 && p.precision == Precision::kBf16) {
      p.precision = Precision::kFp32;
      p.note += "; fp32 on every rank: another rank measured bf16 slower";
    }
  }
  // Muon's Newton-Schulz runs in bf16 only where every rank's bf16 products sum in float32, so that the
  // replicas' updates stay equal (Session::start_fresh).
  std::vector<double> exact{p.probe.bf16_sums_in_float32 ? 1.0 : 0.0};
  comm.min(exact);
  p.probe.bf16_sums_in_float32 = exact[0] == 1.0;
  return p;
}

Runtime start_runtime(const RunConfig& c, bool check_memory, const std::string& command) {
  const World world = world_from_environment();
  torch::Device device = resolve_device(c.runtime.device);
#ifdef PERFORMER_CUDA
  if (device.is_cuda() && world.distributed()) {
    // GPU local_rank; or the only one this process sees (a scheduler that binds one GPU per task).
    const int gpus = static_cast<int>(torch::cuda::device_count());
    const int index = gpus == 1 ? 0 : world.local_rank;
    if (index >= gpus)
      throw Error("rank " + std::to_string(world.rank) + ": local rank " + std::to_string(world.local_rank) +
                  " has no GPU (this process sees " + std::to_string(gpus) + "); start at most one rank per GPU");
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
    c10::cuda::set_device(device.index());
  }
#endif
  if (c.runtime.threads > 0)
    torch::set_num_threads(static_cast<int>(c.runtime.threads));
  else if (world.local_size > 1)
    torch::set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / world.local_size));
  if (check_memory) check_training_memory(c, device);
  // The job's identity: the command and its resolved config (a rank of another run on the same port is
  // refused, train/rendezvous.h).
  const std::string job = command + " " + fmt::format("{:016x}", hash64(config_to_yaml(c)));
  Runtime rt{device, std::make_unique<Communicator>(world, c.runtime.backend, device, c.runtime.timeout_s,
                                                    &g_stop_training, job), {}};
  rt.precision = agreed_precision(c.runtime.precision, device, *rt.comm);
  return rt;
}

// What a training step needs, set up the same way for train() and bench_train().
struct Session {
  torch::Device device{torch::kCPU};
  std::unique_ptr<Communicator> comm;
  PrecisionChoice precision;  // the run's: autocast for forward passes in bf16
  Corpus corpus;
  Encoder model{nullptr};
  Optimizer optimizer{{}, {}};
  std::unique_ptr<GradientSync> sync;  // data-parallel runs: gradient sums across ranks
  double comm_seconds = 0;             // blocked on the other ranks (gradient sums left after backward, agreements)

  // A fresh model (initialized from model.seed) and its optimizer, on the device.
  void start_fresh(const RunConfig& c) {
    sync.reset();
    model = Encoder(c.model);
    model->to(device);
    model->train();
    // Muon's Newton-Schulz products in bf16 where the run's are and bf16 GEMMs sum in float32 (on every
    // rank: agreed_precision); otherwise in the parameters' own float type.
    const bool bf16 = precision.precision == Precision::kBf16 && precision.probe.bf16_sums_in_float32;
    optimizer = Optimizer(named_params(model), OptimizerOptions{c.train.beta1, c.train.beta2, c.train.eps, c.train.weight_decay,
                                                                 c.train.optimizer, c.train.muon_momentum,
                                                                 bf16 ? at::kBFloat16 : at::ScalarType::Undefined});
    if (comm->distributed())
      sync = std::make_unique<GradientSync>(model->parameters(), *comm,
                                            static_cast<int64_t>(c.runtime.bucket_mb * 1024 * 1024));
  }
};

// Data-parallel ranks: rank 0 prepares the corpus (when data.train is a protein file) while the others
// wait, however long it takes; then every rank opens it.
constexpr auto kCorpusWait = std::chrono::hours(24 * 7);

std::string shared_training_corpus(const RunConfig& c, Communicator& comm) {
  if (!comm.distributed()) return training_corpus(c);
  if (comm.primary()) {
    std::string path;
    try {
      path = training_corpus(c);
    } catch (...) {
      comm.publish("corpus", "");
      throw;
    }
    comm.publish("corpus", fs::absolute(path).string());
    return path;
  }
  // The others open what rank 0 prepared; they never prepare (or rewrite) it themselves.
  const std::string path = comm.await("corpus", kCorpusWait, &g_stop_training);
  if (path.empty())
    throw Error("rank " + std::to_string(comm.rank()) + ": rank 0 could not prepare the corpus (its error says why)");
  return path;
}

std::unique_ptr<Session> open_session(const RunConfig& c, Runtime rt) {
  auto s = std::make_unique<Session>();
  s->device = rt.device;
  s->comm = std::move(rt.comm);
  s->precision = rt.precision;
  s->corpus = Corpus::load(shared_training_corpus(c, *s->comm), /*with_accessions=*/false);
  s->start_fresh(c);
  return s;
}

// One optimizer step's forward/backward over micro-batches until `tokens_per_step` real tokens (or one
// batch). Data-parallel ranks share the step's batches out (data/loader.h: batch index % ranks), sum their
// gradients and counts, and so end with what one process computing every batch would have.
// Gradients are left in the parameters, already divided by the number of predicted positions.
struct StepOutcome {
  double loss = 0;  // mean cross-entropy over the step's predicted positions
  int64_t predicted = 0, real_tokens = 0;
};

StepOutcome forward_backward(Session& s, DataLoader& loader, const BatchSource& source, int64_t tokens_per_step,
                             uint64_t seed) {
  const std::vector<DataPosition> plan = step_batches(source, loader.position(), tokens_per_step);
  size_t last_local = plan.size();  // this rank's last batch of the step: its backward overlaps the gradient sums
  for (size_t i = 0; i < plan.size(); ++i)
    if (plan[i].index % s.comm->size() == s.comm->rank()) last_local = i;
  StepOutcome o;
  double total = 0;  // micro-batch losses are backpropagated one by one, as sums
  for (size_t i = 0; i < plan.size(); ++i) {
    Batch b;
    if (!loader.next(b)) throw Error("training data exhausted (empty train split?)");
    o.real_tokens += b.real_tokens;
    if (!b.local) continue;
    if (s.sync && i == last_local) s.sync->arm();
    seed_dropout(seed, b);
    at::Tensor logits;
    {
      RECORD_USER_SCOPE("performer::forward");  // named regions for `bench train --profile`
      const AutocastScope autocast(s.device, s.precision.precision);  // the forward pass; backward follows its dtypes
      logits = s.model(b.inputs.to(s.device), b.padding_mask.to(s.device));
    }
    LossSums ls;
    {
      RECORD_USER_SCOPE("performer::loss");
      ls = cross_entropy_sums(logits, b.labels.to(s.device));
    }
    {
      RECORD_USER_SCOPE("performer::backward");
      ls.loss_sum.backward();
    }
    total += ls.loss_sum.item<double>();
    o.predicted += ls.count;
  }
  if (s.sync) {
    const auto t0 = Clock::now();
    s.sync->finish();
    std::vector<double> sums{total, static_cast<double>(o.predicted)};
    s.comm->sum(sums);
    total = sums[0];
    o.predicted = static_cast<int64_t>(sums[1]);
    s.comm_seconds += seconds_since(t0);
  }
  if (o.predicted > 0) {
    torch::NoGradGuard g;
    for (auto& p : s.model->parameters())
      if (p.grad().defined()) p.mutable_grad().div_(static_cast<double>(o.predicted));
    o.loss = total / static_cast<double>(o.predicted);
  }
  return o;
}

// One optimizer step: forward/backward, clipping, the update at the scheduled rate (skipped when the loss
// or the gradient is not finite), then the feature redraw due at the new step.
StepRecord train_step(Session& s, DataLoader& loader, const BatchSource& source, const RunConfig& c,
                      TrainState& state) {
  const TrainConfig& t = c.train;
  const auto t0 = Clock::now();
  s.optimizer.zero_grad();
  const StepOutcome so = forward_backward(s, loader, source, t.tokens_per_step, c.runtime.seed);
  StepRecord r;
  r.grad_norm = clip_grad_norm(s.optimizer.params(), t.grad_clip);
  r.lr = learning_rate(state.step, t.lr, t.warmup_steps, t.steps, t.schedule);
  r.finite = std::isfinite(so.loss) && std::isfinite(r.grad_norm);
  if (r.finite) {
    RECORD_USER_SCOPE("performer::optimizer");
    s.optimizer.step(r.lr);
  }
  else
    s.optimizer.zero_grad();
  state.bad_steps += r.finite ? 0 : 1;
  ++state.step;
  state.tokens_seen += so.real_tokens;
  if (s.model->update_features(state.step) && s.comm->distributed()) take_rank0_features(*s.comm, s.model);
  synchronize(s.device);
  r.step = state.step;
  r.tokens_seen = state.tokens_seen;
  r.loss = so.loss;
  r.real_tokens = so.real_tokens;
  r.seconds = seconds_since(t0);
  return r;
}

// The valid-split evaluation of a run: standard masking (or next-token for causal models) and all-masked.
class Evaluation {
 public:
  Evaluation(const RunConfig& c, const Corpus& corpus) {
    standard_.max_len = c.data.max_len;
    standard_.tokens_per_batch = c.data.tokens_per_batch;
    standard_.concat = c.data.concat;
    standard_.max_sequences = c.eval.max_sequences;
    standard_.seed = c.eval.seed;
    standard_.objective = objective_for(c.model.causal);
    standard_.masking = MaskingOptions{eval_mask_rate(c), c.data.mask_frac, c.data.random_frac};
    strict_ = standard_;
    strict_.masking = strict_masking(eval_mask_rate(c));
    batches_ = evaluation_batches(corpus, Split::kValid, standard_);  // the same batches for both corruptions
  }

  // Data-parallel ranks each score their share of the batches; the sums over ranks give the one-process figures.
  EvalFigures run(Session& session) const {
    const EvalResult e = shared(session, standard_);
    EvalFigures f{e.loss, e.perplexity, e.accuracy, std::nan(""), std::nan(""), std::nan(""), e.predicted, e.sequences,
                  standard_.objective == Objective::kNextToken};
    if (f.next_token) return f;
    const EvalResult s = shared(session, strict_);
    f.strict_loss = s.loss;
    f.strict_perplexity = s.perplexity;
    f.strict_accuracy = s.accuracy;
    return f;
  }

 private:
  EvalResult shared(Session& session, EvalSettings settings) const {
    settings.shard_rank = session.comm->rank();
    settings.shard_count = session.comm->size();
    const AutocastScope autocast(session.device, session.precision.precision);  // as training runs
    const EvalResult mine = evaluate(session.model, *batches_, settings, session.device);
    if (!session.comm->distributed()) return mine;
    std::vector<double> v{mine.loss_sum, static_cast<double>(mine.predicted), static_cast<double>(mine.correct),
                          static_cast<double>(mine.sequences)};
    session.comm->sum(v);
    return eval_result(v[0], static_cast<int64_t>(v[1]), static_cast<int64_t>(v[2]), static_cast<int64_t>(v[3]));
  }

  EvalSettings standard_, strict_;
  std::unique_ptr<BatchSource> batches_;  // built once: a pass over the corpus
};

// Where a run starts: a fresh model, the checkpoint named by --resume, or with --resume auto the newest
// one that loads completely (every tensor read with its checksum, shapes as the config says, values
// finite); a damaged one is skipped with a warning and the previous one tried.
struct StartPoint {
  std::string resumed_from;          // "" = from scratch
  std::string initialized_from;      // --init: the weights a new run started from
  TrainState state;
  std::vector<std::string> skipped;  // checkpoints --resume auto could not use
};

StartPoint find_start(const RunConfig& c, const TrainOptions& opt, Session& s) {
  StartPoint p;
  if (opt.overwrite) return p;  // --overwrite wins over --resume: the user asked to start over
  if (opt.resume == "auto") {
    for (const std::string& path : list_checkpoints(c.output.dir)) {
      try {
        p.state = load_checkpoint(path, s.model, &s.optimizer, /*restore_rng=*/true);
        p.resumed_from = path;
        return p;
      } catch (const Error& e) {
        p.skipped.push_back(e.what());
        warn(std::string(e.what()) + "; trying an older checkpoint");
      }
    }
    if (!p.skipped.empty()) s.start_fresh(c);  // a failed load may have filled part of the model
  } else if (!opt.resume.empty()) {
    p.state = load_checkpoint(opt.resume, s.model, &s.optimizer, /*restore_rng=*/true);
    p.resumed_from = opt.resume;
  }
  if (p.resumed_from.empty() && !opt.init.empty()) {
    load_model_weights(opt.init, s.model);
    p.initialized_from = opt.init;
  }
  return p;
}

// The config as the run folder and its checkpoints keep it: file paths made absolute, so that the saved
// config.yaml (the resume command's) works from any folder.
RunConfig with_absolute_paths(RunConfig c) {
  for (std::string* path : {&c.data.train, &c.data.clusters, &c.output.dir})
    if (!path->empty() && *path != "-") *path = fs::absolute(*path).lexically_normal().string();
  return c;
}

// A run resumes on the corpus it was trained on: the checkpoint records the corpus's content fingerprint
// (data/corpus.h), so a corpus replaced or re-prepared from other sequences under the same path is refused
// (unless asked for) instead of continuing silently on other data.
void check_same_corpus(const StartPoint& p, const Corpus& corpus, const std::string& fingerprint,
                       const TrainOptions& opt) {
  if (p.resumed_from.empty()) return;
  if (p.state.corpus_fingerprint.empty()) {
    warn(p.resumed_from + ": written by a version that did not record its corpus: cannot check that " +
         corpus.path() + " is the corpus it was trained on");
    return;
  }
  if (p.state.corpus_fingerprint == fingerprint) return;
  const std::string what = p.resumed_from + " was trained on another corpus (" + p.state.corpus_description +
                           ", fingerprint " + p.state.corpus_fingerprint + ") than the one data.train gives now (" +
                           corpus.describe() + ", fingerprint " + fingerprint + ")";
  if (!opt.allow_corpus_change)
    throw Error(what + "; restore the corpus it was trained on, or add --allow-corpus-change to continue on this one");
  warn(what + "; continuing on the new corpus (--allow-corpus-change)");
}

// A run resumes with the optimizer that wrote its state: an AdamW moment and a Muon momentum mean different
// things (train/optimizer.h), and a Muon momentum (about g / (1 - mu)) read as AdamW's first moment beside a
// second moment of 0 would move each weight by about 100 lr in the first step.
void check_same_optimizer(const StartPoint& p, const RunConfig& c) {
  if (p.resumed_from.empty() || p.state.config_yaml.empty()) return;
  const OptimizerKind saved = stored_optimizer(p.state.config_yaml, p.resumed_from);
  if (saved == c.train.optimizer) return;
  throw SettingError("train.optimizer", p.resumed_from + " was trained with train.optimizer " + optimizer_name(saved) +
                                            ", this run asks for " + optimizer_name(c.train.optimizer) +
                                            " (their states differ): resume with --set train.optimizer=" +
                                            optimizer_name(saved) + ", or start over with --overwrite");
}

// Checks the run folder before anything of the run is written (so a failed start leaves it as it was;
// train/run_folder.h): one training per folder, and a folder holding a run is continued or moved aside
// only when asked. `skipped`: the checkpoints --resume auto found damaged, named when none could be used.
void check_run_folder(const RunConfig& c, const TrainOptions& opt, bool holds_a_run_to_replace,
                      const std::vector<std::string>& skipped = {}) {
  if (!holds_a_run_to_replace || opt.overwrite) return;
  const std::string over = "start over with --overwrite (its files are then moved to " + c.output.dir + "/previous-<time>/)";
  if (opt.resume != "auto")
    throw Error(c.output.dir + ": holds a run (metrics, checkpoints); continue it with --resume auto, or " + over);
  // --resume auto found nothing to continue: suggesting it again would not help.
  if (skipped.empty())
    throw Error(c.output.dir + ": holds a run but no checkpoint (ckpt-*.h5) to continue it from; " + over);
  std::vector<std::string> files;
  for (const std::string& why : skipped) files.push_back(why.substr(0, why.find(": ")));
  throw Error(c.output.dir + ": holds a run but none of its checkpoints loads completely (" + join(files, ", ") +
              "; the newest: " + skipped.front() + "); " + over);
}

// Writes checkpoints of the run: ckpt-<step>.h5 (the last output.keep_last kept, and never the one the
// run resumed from) and best.h5.
// Data-parallel runs: rank 0 alone writes (every rank holds the same state).
class Checkpoints {
 public:
  Checkpoints(const OutputConfig& o, std::string resumed_from) : out_(o), resumed_from_(std::move(resumed_from)) {}
  std::string save(Session& s, TrainState& state, const DataLoader& loader, bool best) {
    state.data = loader.position();
    const std::string path = best ? (fs::path(out_.dir) / "best.h5").string() : checkpoint_path(out_.dir, state.step);
    if (!s.comm->primary()) return path;
    save_checkpoint(path, s.model, &s.optimizer, state);
    if (!best) prune_checkpoints(out_.dir, out_.keep_last, /*keep=*/resumed_from_);
    return path;
  }

 private:
  OutputConfig out_;
  std::string resumed_from_;
};

// Tokens per second of this invocation: all steps, and the steps after the timing warm-up.
struct Throughput {
  int64_t warmup = 0, steps = 0, tokens = 0, steady_tokens = 0;
  double seconds = 0, steady_seconds = 0;
  void add(const StepRecord& r) {
    ++steps;
    seconds += r.seconds;
    tokens += r.real_tokens;
    if (steps > warmup) {
      steady_seconds += r.seconds;
      steady_tokens += r.real_tokens;
    }
  }
};

TrainResult empty_result(double unigram) {
  TrainResult r;
  r.unigram_perplexity = unigram;
  r.valid_loss = r.valid_perplexity = r.valid_accuracy = std::nan("");  // until an evaluation ran
  r.strict_perplexity = r.strict_accuracy = std::nan("");
  return r;
}

void record(TrainResult& r, const EvalFigures& e) {
  std::tie(r.valid_loss, r.valid_perplexity, r.valid_accuracy) = std::tie(e.loss, e.perplexity, e.accuracy);
  std::tie(r.strict_perplexity, r.strict_accuracy) = std::tie(e.strict_perplexity, e.strict_accuracy);
}

void record(TrainResult& r, const TrainState& state, const Throughput& speed, double last_window_loss) {
  r.step = state.step;
  r.tokens_seen = state.tokens_seen;
  r.train_loss = last_window_loss;
  r.tokens_per_second = speed.seconds > 0 ? static_cast<double>(speed.tokens) / speed.seconds : 0;
  r.steady_tokens_per_second = speed.steady_seconds > 0 ? static_cast<double>(speed.steady_tokens) / speed.steady_seconds : 0;
}

void log_start(RunLog& log, const RunConfig& c, const TrainOptions& opt, const Session& s, const StartPoint& p,
               const std::string& moved) {
  auto& l = log.log();
  if (!moved.empty()) l.info("--overwrite: the previous run's files were moved to {}", moved);
  for (const std::string& skipped : p.skipped) l.warn("skipped checkpoint: {}", skipped);
  const CorpusStats& st = s.corpus.stats();
  l.info("corpus {} ({}): {} train / {} valid sequences; unigram perplexity of valid {:.3f}", s.corpus.path(),
         s.corpus.storage(), st.sequences[0], st.sequences[1], st.unigram_perplexity_valid);
  // A corpus beyond memory read in scattered order waits on one disk read per protein (measured: 1.0 M
  // residues/s cold on this project's 34.7 GB synthetic corpus, 40 M with blocks of 64).
  std::error_code size_error;
  const auto corpus_bytes = fs::file_size(s.corpus.path(), size_error);
  if (!size_error && s.corpus.mapped() && c.data.shuffle_block == 1 && corpus_bytes > physical_memory_bytes())
    l.warn("corpus {} ({}) is larger than this machine's memory ({}): with data.shuffle_block = 1 every protein "
           "is a scattered disk read; set data.shuffle_block: 64 to read runs of neighbouring proteins",
           s.corpus.path(), human_bytes(static_cast<double>(corpus_bytes)), human_bytes(static_cast<double>(physical_memory_bytes())));
  if (st.split_clusters[0] >= 0)
    l.info("split by sequence cluster: {} train / {} valid clusters; an epoch visits {}", st.split_clusters[0],
           st.split_clusters[1],
           c.data.sample == Sampling::kClusters ? "one member of every train cluster (data.sample: clusters)"
                                                : "every train protein (data.sample: proteins)");
  l.info("model: {} ({:.2f} M parameters), device {}, {} threads, {}", c.model.describe(),
         static_cast<double>(s.model->num_parameters()) / 1e6, s.device.str(), torch::get_num_threads(),
         precision_name(s.precision.precision));
  if (c.train.optimizer == OptimizerKind::kMuon)
    l.info("optimizer: Muon for {} weight matrices of the blocks (momentum {}; Newton-Schulz in {}), AdamW for the "
           "other {} parameters",
           s.optimizer.muon_parameters(), c.train.muon_momentum,
           s.optimizer.options().newton_schulz_dtype == at::kBFloat16 ? "bf16" : "float32",
           static_cast<int64_t>(s.optimizer.params().size()) - s.optimizer.muon_parameters());
  if (s.precision.warning)
    l.warn("{}", s.precision.note);
  else if (!s.precision.note.empty())
    l.info("{}", s.precision.note);
  if (opt.resume == "auto" && p.resumed_from.empty() && !opt.overwrite)
    l.info("--resume auto: no checkpoint in {}, starting from scratch", c.output.dir);
  if (!p.resumed_from.empty())
    l.info("resumed from {} at step {} ({} tokens seen)", p.resumed_from, p.state.step, p.state.tokens_seen);
  if (!p.initialized_from.empty())
    l.info("initialized from {} (its weights; step 0, a fresh optimizer)", p.initialized_from);
  const Communicator& comm = *s.comm;
  if (!comm.distributed()) return;
  l.info("data-parallel: {} ranks ({}), {} collectives, {} gradient buckets; each step's batches are shared out among "
         "the ranks (batch index mod {}); rank 0 writes the run folder", comm.size(), comm.world().launcher,
         comm.backend(), s.sync->buckets(), comm.size());
  if (c.train.tokens_per_step < comm.size() * c.data.tokens_per_batch)
    l.warn("train.tokens_per_step = {} holds fewer than {} batches of data.tokens_per_batch = {}: some ranks will have "
           "no batch in some steps (set train.tokens_per_step to at least {})", c.train.tokens_per_step, comm.size(),
           c.data.tokens_per_batch, comm.size() * c.data.tokens_per_batch);
}

// Data-parallel ranks must start from the same step and data position (the same checkpoint); their
// parameters are then made equal by replicate_rank0().
void check_same_start(Session& s, const TrainState& state) {
  if (!s.comm->distributed()) return;
  const std::vector<std::string> what{"step", "tokens seen", "data epoch", "data batch", "steps planned by the time budget"};
  std::vector<double> lo{static_cast<double>(state.step), static_cast<double>(state.tokens_seen),
                         static_cast<double>(state.data.epoch), static_cast<double>(state.data.index),
                         static_cast<double>(state.planned_steps)};
  std::vector<double> hi = lo;
  s.comm->min(lo);
  s.comm->max(hi);
  for (size_t i = 0; i < lo.size(); ++i)
    if (hi[i] != lo[i])
      throw Error(fmt::format("rank {}: the ranks do not start from the same state ({} from {} to {}); every rank "
                              "must see the same run folder and checkpoint", s.comm->rank(), what[i], lo[i], hi[i]));
}

// Ranks whose states differ by more than this (relative, in some tensor) started from different
// checkpoints or run folders, which is refused; below it they differ in rounding only (another CPU's
// initialization or load), and rank 0's state is taken. One bit of a float32 is 6e-8 relative.
constexpr double kReplicaTolerance = 1e-5;

// Rank 0's model and optimizer state on every rank, bit for bit (train/replicas.h). Returns the log line.
// At the start (`starting`) a difference beyond rounding is refused.
std::string replicate_rank0(Session& s, const char* when, bool starting) {
  if (!s.comm->distributed()) return "";
  const NamedTensors state = replicated_state(s.model, s.optimizer);
  const Divergence d = take_rank0_state(*s.comm, state);
  std::vector<double> worst{static_cast<double>(d.differing), d.max_relative};
  s.comm->max(worst);
  if (starting && worst[1] > kReplicaTolerance)
    throw Error(fmt::format("rank {}: the ranks do not start from the same state ({}: {} differs from rank 0's by "
                            "{:.3g} relative); every rank must see the same run folder and checkpoint", s.comm->rank(),
                            when, d.differing > 0 ? d.worst : std::string("another rank's state"), worst[1]));
  if (worst[0] == 0)
    return fmt::format("replicas: every rank holds rank 0's state bit for bit ({} tensors, {})", d.tensors, when);
  return fmt::format("replicas: up to {:.0f} of {} tensors of another rank differed from rank 0's ({}; largest "
                     "relative difference {:.2g}); every rank now holds rank 0's", worst[0], d.tensors, when, worst[1]);
}

// The stop decision of every rank, agreed: a signal or the time limit seen by one rank stops them all at
// the same step (the other reasons are the same on every rank by construction).
std::optional<StopReason> agreed_stop(Session& s, std::optional<StopReason> local) {
  if (!s.comm->distributed()) return local;
  const auto t0 = Clock::now();
  std::vector<double> flags{local == StopReason::kInterrupted ? 1.0 : 0.0, local == StopReason::kStopAfter ? 1.0 : 0.0,
                            local == StopReason::kTimeLimit ? 1.0 : 0.0};
  s.comm->max(flags);
  s.comm_seconds += seconds_since(t0);
  if (local == StopReason::kCompleted) return local;  // the same step on every rank, whatever else happened
  if (flags[0] > 0) return StopReason::kInterrupted;
  if (flags[1] > 0) return StopReason::kStopAfter;
  if (flags[2] > 0) return StopReason::kTimeLimit;
  return local;
}

// train.budget_minutes: the steps that fit the budget at the pace so far, once it has been measured long
// enough, and lower at each later check should the pace have slowed (train/time_budget.h); rank 0's plan on
// every rank, from the same step on.
void plan_steps(Session& s, const TimeBudget& budget, RunConfig& c, TrainState& state, StopPolicy& stop, RunLog& log) {
  const bool first = state.planned_steps == 0;
  if (!first && (state.step >= state.planned_steps || !replan_due(state.step, state.planned_steps))) return;
  int64_t planned = first ? budget.plan(state.step, c.train.steps) : budget.replan(state.step, state.planned_steps);
  if (s.comm->distributed()) {
    std::vector<double> v{s.comm->primary() ? static_cast<double>(planned) : 0.0};
    s.comm->max(v);
    planned = static_cast<int64_t>(v[0]);
  }
  if (planned == 0 || planned == state.planned_steps) return;
  const int64_t done = state.step - budget.first_step();
  if (first) {
    log.log().info("train.budget_minutes {:g}: train.steps {} -> {} ({:.3f} s a step over the {} steps of the first {:.0f} s, "
                   "evaluations and checkpoints included; the schedule now ends at step {})",
                   c.train.budget_minutes, c.train.steps, planned, budget.seconds() / static_cast<double>(done), done,
                   budget.seconds(), planned);
  } else {
    log.log().info("train.budget_minutes {:g}: at step {}, train.steps {} -> {} ({:.3f} s a step over the {} steps of "
                   "the first {:.0f} s: slower than planned; the schedule now ends at step {})",
                   c.train.budget_minutes, state.step, c.train.steps, planned, budget.seconds() / static_cast<double>(done),
                   done, budget.seconds(), planned);
  }
  if (first && planned < 2 * c.train.warmup_steps)
    log.log().warn("train.budget_minutes {:g}: only {} steps fit, fewer than twice train.warmup_steps {}: the learning "
                   "rate hardly decays; lower train.warmup_steps or raise the budget", c.train.budget_minutes, planned,
                   c.train.warmup_steps);
  state.planned_steps = planned;
  c.train.steps = planned;
  stop.set_steps(planned);
  log.set_total_steps(planned);
}

void log_end(RunLog& log, const TrainResult& r, const std::string& run_dir, bool next_token) {
  const std::string reason = stop_reason_name(r.stop_reason);
  const std::string speed = r.tokens_per_second > 0
                                ? fmt::format("{:.0f} tokens/s (real tokens, forward+backward+update)", r.tokens_per_second)
                                : std::string("no training step in this invocation");
  const double u = r.unigram_perplexity;
  auto change = [u](double x) { return 100.0 * (x / u - 1.0); };
  auto& l = log.log();
  if (!std::isfinite(r.valid_perplexity))
    l.info("{} at step {}: {}; no finite held-out evaluation", reason, r.step, speed);
  else if (next_token)
    l.info("{} at step {}: {}; held-out (valid) next-token perplexity {:.3f} ({:+.1f}% vs unigram {:.3f})", reason,
           r.step, speed, r.valid_perplexity, change(r.valid_perplexity), u);
  else
    l.info("{} at step {}: {}; held-out (valid) perplexity {:.3f} ({:+.1f}% vs unigram {:.3f}), all-masked {:.3f} "
           "({:+.1f}%)", reason, r.step, speed, r.valid_perplexity, change(r.valid_perplexity), u, r.strict_perplexity,
           change(r.strict_perplexity));
  if (can_continue(r.stop_reason))
    l.info("to continue: performer train --config {} --resume auto",
           run_config_path(fs::absolute(run_dir).lexically_normal().string()));
}

}  // namespace

std::shared_ptr<BatchSource> training_batches(const Corpus& corpus, const DataConfig& d, uint64_t seed) {
  BatchOptions bo;
  bo.max_len = d.max_len;
  bo.tokens_per_batch = d.tokens_per_batch;
  bo.seed = data_seed(seed);
  bo.bucket_window = d.bucket_window;
  bo.sample = d.sample;
  bo.shuffle_block = d.shuffle_block;
  if (d.concat) return std::make_shared<ConcatBatches>(corpus, Split::kTrain, bo);
  return std::make_shared<SequenceBatches>(corpus, Split::kTrain, bo);
}

std::string training_corpus(const RunConfig& c) {
  return prepared_corpus(CorpusSource{c.data.train, (fs::path(c.output.dir) / "corpus.h5").string(), c.data.valid_frac,
                                      c.data.test_frac, c.data.dedup, c.data.clusters});
}

namespace {

// A run about to take its first step: checked, its folder locked (rank 0), its session open, its start
// point found, its config written.
struct RunStart {
  std::optional<RunFolderLock> lock;  // rank 0
  std::unique_ptr<Session> session;
  StartPoint start;
  std::string moved;                  // where --overwrite moved the previous run's files
  std::string replicas;               // data-parallel runs: how the ranks came to hold rank 0's state
  bool primary = true;
};

// Everything is checked before anything of the run is written (train/run_folder.h). Data-parallel ranks
// other than 0 only read the run folder. (Filled in place: the lock cannot move.)
void begin_run(const RunConfig& c, const TrainOptions& opt, RunStart& r) {
  const fs::path dir(c.output.dir);
  refuse_overwriting_inputs("output.dir",
                            {c.output.dir, (dir / "metrics.csv").string(), (dir / "eval.csv").string(),
                             (dir / "train.log").string(), (dir / "best.h5").string()},
                            {{"data.train", c.data.train}, {"data.clusters", c.data.clusters}});
  Runtime rt = start_runtime(c, opt.check_memory, "train");
  r.primary = rt.comm->primary();
  if (r.primary) {
    fs::create_directories(c.output.dir);
    r.lock.emplace(c.output.dir);
    remove_stale_temporaries(c.output.dir);  // "*.tmp-<pid>" of killed runs
  }
  const bool explicit_resume = !opt.overwrite && !opt.resume.empty() && opt.resume != "auto";
  if (explicit_resume && !fs::exists(opt.resume)) throw Error(opt.resume + ": checkpoint to resume from does not exist");
  if (!opt.init.empty() && explicit_resume)
    throw Error("--init " + opt.init + " and --resume " + opt.resume + ": give one (--resume continues a run, --init "
                "starts a new one from a checkpoint's weights; --resume auto with --init does the first when it can)");
  if (!opt.init.empty() && !fs::exists(opt.init)) throw Error(opt.init + ": checkpoint to initialize from does not exist");
  check_run_folder(c, opt, opt.resume.empty() && holds_run(c.output.dir));  // before the corpus is prepared
  r.session = open_session(c, std::move(rt));
  Session& s = *r.session;
  r.start = find_start(c, opt, s);
  check_same_optimizer(r.start, c);
  TrainState& state = r.start.state;
  state.config_yaml = config_to_yaml(with_absolute_paths(c));
  const std::string fingerprint = s.corpus.fingerprint();
  check_same_corpus(r.start, s.corpus, fingerprint, opt);
  state.corpus_fingerprint = fingerprint;
  state.corpus_description = s.corpus.describe();
  const bool start_over = r.start.resumed_from.empty() && holds_run(c.output.dir);
  check_run_folder(c, opt, start_over, r.start.skipped);
  // Past this collective rank 0 writes: every rank has read the folder and its checkpoint by then.
  check_same_start(s, state);
  r.replicas = replicate_rank0(s, r.start.resumed_from.empty() ? "at start" : "after loading the checkpoint", true);
  r.moved = start_over && r.primary ? move_run_aside(c.output.dir) : "";
  if (r.primary) write_text_file(run_config_path(c.output.dir), state.config_yaml);
}

// The figures of a finished run, and its last lines in the log.
void finish_run(TrainResult& result, RunLog& log, const RunConfig& c, const Session& s, const TrainState& state,
                const Throughput& speed, double anon_at_start) {
  record(result, state, speed, log.last_window_loss());
  result.peak_bytes = peak_memory(s.device);
  result.comm_seconds = s.comm_seconds;
  if (s.comm->distributed() && speed.seconds > 0)
    log.log().info("data-parallel: {:.1f}% of training time waiting on the other ranks ({:.2f} s of {:.2f} s: gradient "
                   "sums not hidden by backward, and the per-step agreements)", 100.0 * s.comm_seconds / speed.seconds,
                   s.comm_seconds, speed.seconds);
  log.log().info("anonymous memory (RssAnon, without the page cache of the mapped corpus): {} before the first step, "
                 "{} at the end", human_bytes(anon_at_start), human_bytes(static_cast<double>(anonymous_rss_bytes())));
  log_end(log, result, c.output.dir, c.model.causal);
}

}  // namespace

TrainResult train(const RunConfig& config, const TrainOptions& opt) {
  RunStart run;
  begin_run(config, opt, run);
  Session& s = *run.session;
  TrainState& state = run.start.state;
  RunConfig c = config;  // train.steps as train.budget_minutes planned them, once it has
  if (c.train.budget_minutes > 0 && state.planned_steps > 0) c.train.steps = std::min(c.train.steps, state.planned_steps);
  RunLog log(c.output.dir, run.start.resumed_from.empty() ? -1 : state.step, c.train.steps, c.output.log_every,
             opt.progress_bar, s.comm->rank());
  log_start(log, c, opt, s, run.start, run.moved);
  if (c.train.budget_minutes > 0 && state.planned_steps > 0)
    log.log().info("train.steps {} as train.budget_minutes planned them before this checkpoint", c.train.steps);
  else if (state.planned_steps > 0)
    log.log().warn("the checkpoint's run planned {} steps under train.budget_minutes; with train.budget_minutes 0 now, "
                   "train.steps {} applies and the schedule runs to it", state.planned_steps, c.train.steps);
  if (!run.replicas.empty()) log.log().info("{}", run.replicas);
  if (s.model->update_features(state.step) && s.comm->distributed()) take_rank0_features(*s.comm, s.model);
  const auto source = training_batches(s.corpus, c.data, c.runtime.seed);
  LoaderOptions lo = loader_options(c.data, c.model.causal, c.runtime.seed);
  lo.shard_rank = s.comm->rank();
  lo.shard_count = s.comm->size();
  DataLoader loader(source, lo, state.data);
  const Evaluation evaluation(c, s.corpus);
  Checkpoints checkpoints(c.output, run.start.resumed_from);
  TrainResult result = empty_result(s.corpus.stats().unigram_perplexity_valid);
  result.primary = run.primary;
  auto evaluate_and_keep_best = [&] {
    const EvalFigures e = evaluation.run(s);
    log.eval(state.step, e, result.unigram_perplexity);
    record(result, e);
    if (e.loss < state.best_valid_loss) {
      state.best_valid_loss = e.loss;
      checkpoints.save(s, state, loader, /*best=*/true);
    }
  };
  auto checkpoint = [&] {
    // The ranks' states may drift apart in their last bits (CPUs or GPUs that round differently): checked
    // by fingerprint before each checkpoint, and rank 0's taken where they differ.
    if (s.comm->distributed() && !same_on_every_rank(*s.comm, state_fingerprint(replicated_state(s.model, s.optimizer))))
      log.log().warn("step {}: {}", state.step, replicate_rank0(s, "drifted apart in training", false));
    result.checkpoint = checkpoints.save(s, state, loader, /*best=*/false);
    log.log().info("checkpoint {}", result.checkpoint);
  };

  result.start_bytes = memory_in_use(s.device);
  const double anon_at_start = static_cast<double>(anonymous_rss_bytes());
  StopPolicy stop({c.train.steps, opt.stop_after, c.train.max_minutes, c.train.max_bad_steps}, state.step);
  const TimeBudget budget(state.planned_steps > 0 ? 0.0 : c.train.budget_minutes, state.step);
  Throughput speed{opt.timing_warmup};
  std::optional<StopReason> reason;
  while (!(reason = agreed_stop(s, stop.before_step(state.step)))) {
    const StepRecord r = train_step(s, loader, *source, c, state);
    speed.add(r);
    log.step(r);
    if (!r.finite)
      log.log().warn("step {}: non-finite loss or gradient (loss {}, grad norm {}), step skipped ({} in a row)", r.step,
                     r.loss, r.grad_norm, stop.consecutive_bad() + 1);
    if (stop.after_step(r.finite)) {
      reason = StopReason::kNonFinite;
      checkpoint();
      log.log().error("{} consecutive steps had a non-finite loss or gradient; stopped. The checkpoint {} holds the last "
                      "good parameters; lower train.lr or raise train.grad_clip before resuming.",
                      stop.consecutive_bad(), result.checkpoint);
      break;
    }
    // The first plan, then its checks (train/time_budget.h); before this step's checkpoint, so that the
    // checkpoint holds the plan the run goes on with (the pace counts the evaluations and checkpoints before).
    if (budget.budget_seconds() > 0) plan_steps(s, budget, c, state, stop, log);
    const bool last = state.step >= c.train.steps;
    if (c.eval.every > 0 && state.step % c.eval.every == 0 && !last) evaluate_and_keep_best();
    if (c.output.checkpoint_every > 0 && state.step % c.output.checkpoint_every == 0 && !last) checkpoint();
  }
  result.stop_reason = *reason;
  if (result.stop_reason == StopReason::kInterrupted || result.stop_reason == StopReason::kTimeLimit) {
    checkpoint();  // first: the time left after a signal (SLURM's notice, torchrun's grace) may be short
    evaluate_and_keep_best();
  } else if (result.stop_reason != StopReason::kNonFinite) {
    evaluate_and_keep_best();
    checkpoint();
  }
  finish_run(result, log, c, s, state, speed, anon_at_start);
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

TrainBenchResult bench_train(const RunConfig& c, int64_t steps, int64_t warmup, const std::string& profile) {
  if (steps < 1) throw Error("bench train: --steps must be at least 1");
  if (!profile.empty()) OpProfile::require_traces();
  Runtime rt = start_runtime(c, /*check_memory=*/true, "bench train");
  if (rt.comm->primary()) fs::create_directories(c.output.dir);
  const std::unique_ptr<Session> session = open_session(c, std::move(rt));
  Session& s = *session;
  const auto source = training_batches(s.corpus, c.data, c.runtime.seed);
  LoaderOptions lo = loader_options(c.data, c.model.causal, c.runtime.seed);
  lo.shard_rank = s.comm->rank();
  lo.shard_count = s.comm->size();
  DataLoader loader(source, lo);
  TrainState state;
  Throughput speed{warmup};
  double comm_at_warmup = 0;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    if (i == warmup) comm_at_warmup = s.comm_seconds;
    speed.add(train_step(s, loader, *source, c, state));
  }
  TrainBenchResult r;
  r.parameters = s.model->num_parameters();
  r.tokens_per_second = static_cast<double>(speed.steady_tokens) / speed.steady_seconds;
  r.seconds_per_step = speed.steady_seconds / static_cast<double>(steps);
  r.tokens_per_step = speed.steady_tokens / steps;
  r.peak_bytes = peak_memory(s.device);
  r.flops_per_token = training_flops_per_token(c.model, c.data.max_len);
  r.ranks = s.comm->size();
  r.rank = s.comm->rank();
  r.comm_share = (s.comm_seconds - comm_at_warmup) / speed.steady_seconds;
  r.precision = s.precision.precision;
  r.precision_note = s.precision.note;
  if (!profile.empty()) {
    OpProfile p;
    p.start();
    for (int64_t i = 0; i < steps; ++i) train_step(s, loader, *source, c, state);
    p.stop();
    if (s.comm->primary()) p.save(profile);
    r.ops = p.ops();
    r.profiled_s = p.region_seconds();
  }
  // The peak the steps are measured against, in the same process with the same threads (each rank
  // measures its own; they share the machine as the steps did).
  r.gemm_n = s.device.is_cuda() ? 4096 : kBenchGemmN;
  r.gemm_peak_tflops =
      measure_gemm_gflops(s.device, r.precision == Precision::kBf16 ? at::kBFloat16 : at::kFloat, r.gemm_n, 0.5) / 1e3;
  return r;
}

}  // namespace performer
