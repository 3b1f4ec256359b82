// The run configuration: one schema table (every key, its type, range or choices, meaning and the struct
// field it reads and writes) drives parsing, validation, the resolved YAML and `performer config --defaults`.
#include "train/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <variant>

#include "util/device.h"
#include "util/error.h"
#include "util/names.h"

namespace performer {

namespace {

// ------------------------------------------------------------------------------------------------ schema

enum class Type { kString, kInt, kUInt, kFloat, kBool, kChoice };
using Value = std::variant<std::string, int64_t, uint64_t, double, bool>;

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Key {
  std::string path;     // "section.key"
  Type type = Type::kString;
  std::string meaning;  // one line
  // kInt: [imin, imax] (imax = kNoMax: unbounded). kUInt: the whole uint64 range.
  int64_t imin = 0, imax = kNoMax;
  // kFloat: lo/hi, each inclusive or open.
  double lo = -kInf, hi = kInf;
  bool lo_open = false, hi_open = false;
  std::vector<std::string> choices;  // kChoice
  bool nonempty = false;             // kString
  std::function<Value(const RunConfig&)> get;
  std::function<void(RunConfig&, const Value&)> set;

  std::string section() const { return path.substr(0, path.find('.')); }
  std::string leaf() const { return path.substr(path.find('.') + 1); }
};

Key make_key(const std::string& path, Type type, const std::string& meaning) {
  Key k;
  k.path = path;
  k.type = type;
  k.meaning = meaning;
  return k;
}

template <class S, class T>
void bind(Key& k, S RunConfig::*sec, T S::*mem) {
  k.get = [sec, mem](const RunConfig& c) { return Value(c.*sec.*mem); };
  k.set = [sec, mem](RunConfig& c, const Value& v) { c.*sec.*mem = std::get<T>(v); };
}

template <class S>
Key string_key(const std::string& path, S RunConfig::*sec, std::string S::*mem, const std::string& meaning,
               bool nonempty = true) {
  Key k = make_key(path, Type::kString, meaning);
  k.nonempty = nonempty;
  bind(k, sec, mem);
  return k;
}

template <class S>
Key int_key(const std::string& path, S RunConfig::*sec, int64_t S::*mem, int64_t min, int64_t max,
            const std::string& meaning) {
  Key k = make_key(path, Type::kInt, meaning);
  k.imin = min;
  k.imax = max;
  bind(k, sec, mem);
  return k;
}

template <class S>
Key uint_key(const std::string& path, S RunConfig::*sec, uint64_t S::*mem, const std::string& meaning) {
  Key k = make_key(path, Type::kUInt, meaning);
  bind(k, sec, mem);
  return k;
}

// Range as written: "[0, 1)", "(0, 10]", "[0, inf)".
template <class S>
Key float_key(const std::string& path, S RunConfig::*sec, double S::*mem, const std::string& range,
              const std::string& meaning) {
  Key k = make_key(path, Type::kFloat, meaning);
  k.lo_open = range.front() == '(';
  k.hi_open = range.back() == ')';
  const auto comma = range.find(',');
  k.lo = std::strtod(range.substr(1, comma - 1).c_str(), nullptr);
  const std::string hi = range.substr(comma + 1, range.size() - comma - 2);
  k.hi = hi.find("inf") != std::string::npos ? kInf : std::strtod(hi.c_str(), nullptr);
  bind(k, sec, mem);
  return k;
}

template <class S>
Key bool_key(const std::string& path, S RunConfig::*sec, bool S::*mem, const std::string& meaning) {
  Key k = make_key(path, Type::kBool, meaning);
  bind(k, sec, mem);
  return k;
}

template <class S>
Key choice_key(const std::string& path, S RunConfig::*sec, std::string S::*mem, std::vector<std::string> choices,
               const std::string& meaning) {
  Key k = make_key(path, Type::kChoice, meaning);
  k.choices = std::move(choices);
  bind(k, sec, mem);
  return k;
}

// A choice stored as an enum: get/set convert through the given functions.
Key enum_key(const std::string& path, std::vector<std::string> choices, std::function<std::string(const RunConfig&)> get,
             std::function<void(RunConfig&, const std::string&)> set, const std::string& meaning) {
  Key k = make_key(path, Type::kChoice, meaning);
  k.choices = std::move(choices);
  k.get = [get](const RunConfig& c) { return Value(get(c)); };
  k.set = [set](RunConfig& c, const Value& v) { set(c, std::get<std::string>(v)); };
  return k;
}

// The keys of each section, in the order `config --defaults` and config.yaml list them.
using R = RunConfig;
using D = DataConfig;
using M = EncoderConfig;
using T = TrainConfig;
using E = EvalConfig;
using O = OutputConfig;
using X = RuntimeConfig;

void data_keys(std::vector<Key>& k) {
  k.push_back(string_key("data.train", &R::data, &D::train,
                         "training data: a prepared corpus (.h5) or a FASTA/UniProt file (plain or .gz)"));
  k.push_back(float_key("data.valid_frac", &R::data, &D::valid_frac, "[0, 1)",
                        "fraction of sequences split off for validation (when data.train is a sequence file)"));
  k.push_back(float_key("data.test_frac", &R::data, &D::test_frac, "[0, 1)",
                        "fraction of sequences split off for test (when data.train is a sequence file)"));
  k.push_back(bool_key("data.dedup", &R::data, &D::dedup,
                       "drop exact duplicate sequences when preparing a sequence file"));
  k.push_back(string_key("data.clusters", &R::data, &D::clusters,
                         "when data.train is a sequence file: cluster TSV (representative, member; mmseqs2) keying "
                         "the train/valid/test split by cluster; \"\" = split by sequence hash",
                         /*nonempty=*/false));
  k.push_back(enum_key("data.sample", sampling_names(), [](const R& c) { return sampling_name(c.data.sample); },
                       [](R& c, const std::string& s) { c.data.sample = parse_sampling(s); },
                       "what a training epoch visits: every protein, or every cluster once through one member "
                       "chosen by (seed, epoch, cluster) (needs a corpus prepared with clusters)"));
  k.push_back(int_key("data.max_len", &R::data, &D::max_len, 3, kNoMax,
                      "tokens per row incl. <cls>/<eos>; longer proteins are cropped"));
  k.push_back(int_key("data.tokens_per_batch", &R::data, &D::tokens_per_batch, 1, kNoMax,
                      "token budget of one batch (rows x padded length); at least data.max_len"));
  k.push_back(bool_key("data.concat", &R::data, &D::concat,
                       "TrEMBL-concat mode: proteins joined and cut into data.max_len chunks"));
  k.push_back(float_key("data.mask_rate", &R::data, &D::mask_rate, "(0, 1)",
                        "fraction of tokens selected for masked-language-model prediction"));
  k.push_back(float_key("data.mask_frac", &R::data, &D::mask_frac, "[0, 1]",
                        "training: share of selected tokens replaced by <mask> (BERT/ESM: 0.8)"));
  k.push_back(float_key("data.random_frac", &R::data, &D::random_frac, "[0, 1]",
                        "training: share replaced by a random amino acid (0.1); the rest stay unchanged"));
  k.push_back(int_key("data.bucket_window", &R::data, &D::bucket_window, 1, kNoMax,
                      "sequences sorted by length within windows of this many, so batches pad little"));
  k.push_back(int_key("data.shuffle_block", &R::data, &D::shuffle_block, 1, kNoMax,
                      "consecutive corpus proteins the epoch order moves together: 1 = every protein on its own; "
                      "64 for a corpus larger than memory on a disk slow at scattered reads"));
  k.push_back(int_key("data.prefetch", &R::data, &D::prefetch, 0, 1024, "batches prepared ahead of the trainer"));
}

void model_keys(std::vector<Key>& k) {
  // model (model.seed is not a key: it is runtime.seed)
  k.push_back(enum_key(
      "model.kind", attention_kind_names(), [](const R& c) { return attention_kind_name(c.model.kind); },
      [](R& c, const std::string& s) { c.model.kind = parse_attention_kind(s); },
      "attention: exact softmax (Transformer), FAVOR+ softmax random features, or FAVOR ReLU features"));
  k.push_back(int_key("model.layers", &R::model, &M::layers, 1, kNoMax, "encoder blocks"));
  k.push_back(int_key("model.heads", &R::model, &M::heads, 1, kNoMax, "attention heads; divide model.d_model"));
  k.push_back(int_key("model.d_model", &R::model, &M::d_model, 1, kNoMax, "hidden size"));
  k.push_back(int_key("model.d_ff", &R::model, &M::d_ff, 1, kNoMax, "inner size of the feed-forward blocks"));
  k.push_back(int_key("model.features", &R::model, &M::features, 1, kNoMax,
                      "random features m per head (FAVOR kinds)"));
  k.push_back(int_key("model.redraw_interval", &R::model, &M::redraw_interval, 0, kNoMax,
                      "training steps between random-feature redraws; 0 = never"));
  k.push_back(bool_key("model.causal", &R::model, &M::causal,
                       "causal (left-to-right, trained on next-token prediction) instead of bidirectional (masked LM)"));
  k.push_back(float_key("model.dropout", &R::model, &M::dropout, "[0, 1)",
                        "dropout on residual branches and inside the feed-forward blocks"));
  k.push_back(int_key("model.max_len", &R::model, &M::max_len, 3, kNoMax,
                      "longest input (size of the learned position table); at least data.max_len"));
  k.push_back(enum_key(
      "model.positions", position_kind_names(), [](const R& c) { return position_kind_name(c.model.positions); },
      [](R& c, const std::string& s) { c.model.positions = parse_position_kind(s); },
      "positions: learned absolute embeddings or rotary (on q, k)"));
  k.push_back(enum_key(
      "model.lm_head", lm_head_names(), [](const R& c) { return lm_head_name(c.model.lm_head); },
      [](R& c, const std::string& s) { c.model.lm_head = parse_lm_head(s); },
      "MLM head: tied (LayerNorm, then the token embedding as decoder) or esm (ESM-2's dense, GELU, LayerNorm "
      "before it; with rotary positions the model maps onto HuggingFace's EsmForMaskedLM)"));
  k.push_back(bool_key("model.token_dropout", &R::model, &M::token_dropout,
                       "ESM-2's token dropout: <mask> embeddings zeroed, the others scaled by (1 - 0.12) / (1 - "
                       "the row's masked fraction), in training and evaluation alike"));
  k.push_back(int_key("model.local_kernel", &R::model, &M::local_kernel, 0, 63,
                      "odd width of a depthwise convolution over positions added to each attention branch "
                      "(local mixing beside the attention; 0 = none)"));
  k.push_back(bool_key("model.local_ffn", &R::model, &M::local_ffn,
                       "also a depthwise convolution of width model.local_kernel (its own weights) beside each "
                       "feed-forward block"));
  k.push_back(enum_key(
      "model.activation", activation_names(), [](const R& c) { return activation_name(c.model.activation); },
      [](R& c, const std::string& s) { c.model.activation = parse_activation(s); },
      "feed-forward nonlinearity: gelu (ESM-2's), relu2 (squared ReLU) or swiglu (SiLU-gated, a third D x d_ff "
      "matrix)"));
  k.push_back(bool_key("model.orthogonal", &R::model, &M::orthogonal,
                       "orthogonal blocks of random features (false: i.i.d. Gaussian rows)"));
  k.push_back(enum_key(
      "model.row_norms", row_norms_names(), [](const R& c) { return row_norms_name(c.model.row_norms); },
      [](R& c, const std::string& s) { c.model.row_norms = parse_row_norms(s); },
      "norms of the random feature rows: chi(d) draws (unbiased) or fixed sqrt(d) (lower variance, biased)"));
  k.push_back(bool_key("model.relu_projection", &R::model, &M::relu_projection,
                       "favor-relu: random projection W (false: deterministic ReLU(x), m = d_head)"));
  k.push_back(int_key("model.causal_chunk", &R::model, &M::causal_chunk, 1, kNoMax,
                      "chunk length of the causal prefix sums and of the causal stabilizer's running maximum"));
  k.push_back(bool_key("model.favor_lean", &R::model, &M::favor_lean,
                       "bidirectional FAVOR recomputes its features chunk by chunk in backward instead of storing "
                       "[L, m] tensors: the same result to rounding, O(L d) memory (false: features stored whole)"));
  k.push_back(int_key("model.favor_chunk", &R::model, &M::favor_chunk, 0, kNoMax,
                      "positions per chunk of the memory-lean FAVOR core; 0 = automatic (rows x heads x features x "
                      "chunk ~ 2^19 on CPU, 2^24 on CUDA)"));
}

void train_keys(std::vector<Key>& k) {
  k.push_back(float_key("train.lr", &R::train, &T::lr, "(0, 10]", "peak learning rate (AdamW; Muon scales its update to match)"));
  k.push_back(float_key("train.beta1", &R::train, &T::beta1, "[0, 1)", "Adam decay of the first moment"));
  k.push_back(float_key("train.beta2", &R::train, &T::beta2, "[0, 1)", "Adam decay of the second moment"));
  k.push_back(float_key("train.eps", &R::train, &T::eps, "(0, 1]", "Adam epsilon"));
  k.push_back(float_key("train.weight_decay", &R::train, &T::weight_decay, "[0, 10]",
                        "decoupled weight decay (AdamW), on matrices only"));
  k.push_back(enum_key("train.optimizer", optimizer_names(), [](const R& c) { return optimizer_name(c.train.optimizer); },
                       [](R& c, const std::string& s) { c.train.optimizer = parse_optimizer(s); },
                       "adamw; or muon: the blocks' weight matrices by Muon (orthogonalized momentum, scaled to "
                       "AdamW's update size), everything else by AdamW"));
  k.push_back(float_key("train.muon_momentum", &R::train, &T::muon_momentum, "[0, 1)",
                        "Muon's Nesterov momentum (train.optimizer muon)"));
  k.push_back(int_key("train.warmup_steps", &R::train, &T::warmup_steps, 0, kNoMax,
                      "steps of linear warm-up from 0 to train.lr"));
  k.push_back(enum_key("train.schedule", schedule_names(), [](const R& c) { return schedule_name(c.train.schedule); },
                       [](R& c, const std::string& s) { c.train.schedule = parse_schedule(s); },
                       "after warm-up: constant, or linear / cosine decay to 0 at train.steps"));
  k.push_back(int_key("train.steps", &R::train, &T::steps, 1, kNoMax, "optimizer steps"));
  k.push_back(int_key("train.tokens_per_step", &R::train, &T::tokens_per_step, 0, kNoMax,
                      "real tokens per optimizer step over all data-parallel ranks together (micro-batches "
                      "of data.tokens_per_batch, shared out among the ranks); 0 = one batch per step"));
  k.push_back(float_key("train.grad_clip", &R::train, &T::grad_clip, "[0, inf)",
                        "max global gradient norm; 0 = off"));
  k.push_back(int_key("train.max_bad_steps", &R::train, &T::max_bad_steps, 1, kNoMax,
                      "consecutive NaN/Inf steps before the run stops"));
  k.push_back(float_key("train.max_minutes", &R::train, &T::max_minutes, "[0, inf)",
                        "stop (with a checkpoint) after this wall time; 0 = no limit"));
  k.push_back(float_key("train.budget_minutes", &R::train, &T::budget_minutes, "[0, inf)",
                        "fit the run into this wall time: the pace measured over its first tenth (at most a minute) "
                        "lowers train.steps so that the schedule ends in time; 0 = off"));
}

void eval_output_runtime_keys(std::vector<Key>& k) {
  // eval
  k.push_back(int_key("eval.every", &R::eval, &E::every, 0, kNoMax, "steps between evaluations; 0 = only at the end"));
  k.push_back(int_key("eval.max_sequences", &R::eval, &E::max_sequences, 1, kNoMax,
                      "validation sequences (or chunks) evaluated"));
  k.push_back(uint_key("eval.seed", &R::eval, &E::seed, "masking seed of the evaluation sample"));
  k.push_back(float_key("eval.mask_rate", &R::eval, &E::mask_rate, "[0, 1)",
                        "share of tokens masked in evaluations; 0 = data.mask_rate. Set 0.15 to train at "
                        "another data.mask_rate and report the standard masked perplexity"));
  // output
  k.push_back(string_key("output.dir", &R::output, &O::dir, "run folder: checkpoints, logs, the resolved config"));
  k.push_back(int_key("output.checkpoint_every", &R::output, &O::checkpoint_every, 0, kNoMax,
                      "steps between checkpoints; 0 = only at the end"));
  k.push_back(int_key("output.keep_last", &R::output, &O::keep_last, 1, kNoMax,
                      "checkpoints kept (older ones are deleted)"));
  k.push_back(int_key("output.log_every", &R::output, &O::log_every, 1, kNoMax, "steps between log lines"));
  // runtime
  k.push_back(choice_key("runtime.device", &R::runtime, &X::device, device_choice_names(),
                         "auto (CUDA when available, else CPU), cpu or cuda"));
  k.push_back(int_key("runtime.threads", &R::runtime, &X::threads, 0, 4096, "CPU threads; 0 = all cores (the global --threads flag, when given, wins)"));
  k.push_back(uint_key("runtime.seed", &R::runtime, &X::seed,
                       "seed of model init, data order, masking and features (also the model seed)"));
  k.push_back(enum_key("runtime.precision", precision_names(), [](const R& c) { return precision_name(c.runtime.precision); },
                       [](R& c, const std::string& s) { c.runtime.precision = parse_precision(s); },
                       "fp32; bf16 (autocast: matrix products in bfloat16, on CPU and CUDA); auto (bf16 where a GEMM probe at start measures it >= 1.5x faster than fp32)"));
  k.push_back(enum_key("runtime.backend", backend_names(), [](const R& c) { return backend_name(c.runtime.backend); },
                       [](R& c, const std::string& s) { c.runtime.backend = parse_backend(s); },
                       "collectives of a data-parallel run: auto (NCCL on CUDA, else Gloo), gloo or nccl"));
  k.push_back(float_key("runtime.bucket_mb", &R::runtime, &X::bucket_mb, "(0, 4096]",
                        "MB of gradients per all-reduce of a data-parallel run; buckets start while backward runs"));
  k.push_back(float_key("runtime.timeout_s", &R::runtime, &X::timeout_s, "(0, inf)",
                        "seconds a data-parallel rank waits on the others before it stops with an error"));
}

const std::vector<Key>& schema() {
  static const std::vector<Key> keys = [] {
    std::vector<Key> k;
    data_keys(k);
    model_keys(k);
    train_keys(k);
    eval_output_runtime_keys(k);
    return k;
  }();
  return keys;
}

std::vector<std::string> sections() {
  std::vector<std::string> out;
  for (const Key& k : schema())
    if (out.empty() || out.back() != k.section()) out.push_back(k.section());
  return out;
}

const Key* find_key(const std::string& path) {
  for (const Key& k : schema())
    if (k.path == path) return &k;
  return nullptr;
}

// ------------------------------------------------------------------------------------------------ helpers

size_t levenshtein(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// One UTF-8 character of s at i (advancing i), or -1 for a byte that does not start a valid one (i then
// steps over that byte).
long next_code_point(const std::string& s, size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    ++i;
    return b;
  }
  const size_t extra = (b >> 5) == 0x6 ? 1 : (b >> 4) == 0xe ? 2 : (b >> 3) == 0x1e ? 3 : 0;
  if (extra == 0 || i + extra >= s.size()) {
    ++i;
    return -1;
  }
  long cp = b & (0x3f >> extra);
  for (size_t k = 1; k <= extra; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xc0) != 0x80) {
      ++i;
      return -1;
    }
    cp = (cp << 6) | (c & 0x3f);
  }
  i += extra + 1;
  return cp;
}

// Characters a terminal shows as nothing, or as a space: C1 controls, no-break and zero-width spaces,
// joiners, direction marks, word joiners, the byte-order mark.
bool invisible(long cp) {
  return (cp >= 0x80 && cp <= 0xa0) || cp == 0xad || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
         (cp >= 0x2060 && cp <= 0x2064) || cp == 0xfeff;
}

// Text as it appears in a one-line message: control characters, invisible characters (and with
// ascii_only every character beyond ASCII) escaped, as backslash-n, backslash-u200b for U+200B, or
// backslash-xff for a byte that is not UTF-8, so that two keys that look alike on a terminal read
// differently; long text cut.
std::string shown(const std::string& s, bool ascii_only = false) {
  constexpr size_t kMax = 80;
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const long cp = next_code_point(s, i);
    std::string piece;
    if (cp == '\n') piece = "\\n";
    else if (cp == '\r') piece = "\\r";
    else if (cp == '\t') piece = "\\t";
    else if (cp < 0) piece = fmt::format("\\x{:02x}", static_cast<unsigned char>(s[start]));
    else if (cp < 0x20 || cp == 0x7f || invisible(cp) || (ascii_only && cp >= 0x80)) piece = fmt::format("\\u{:04x}", cp);
    else piece = s.substr(start, i - start);
    if (out.size() + piece.size() > kMax - 3) return out + "...";  // cut between characters, never inside one
    out += piece;
  }
  return out;
}

// A key with its escaped characters removed, when it had any (train.lr + U+200B -> "train.lr"), else "".
std::string without_escaped(const std::string& key) {
  std::string plain;
  bool any = false;
  for (size_t i = 0; i < key.size();) {
    const size_t start = i;
    const long cp = next_code_point(key, i);
    if (cp < 0x20 || cp >= 0x7f) any = true;  // what shown(..., ascii_only) escapes
    else plain.append(key, start, i - start);
  }
  return any ? plain : "";
}

// "unknown key 'train.lrr' (did you mean 'train.lr'?)": the nearest full path by edit distance, preferring
// a key with the same name in another section (train.max_len -> data.max_len).
std::string unknown_key_message(const std::string& path) {
  std::string msg = "unknown key '" + shown(path, /*ascii_only=*/true) + "'";
  const std::string plain = without_escaped(path);
  if (!plain.empty())
    return msg + " (it holds invisible or non-ASCII characters, shown escaped" +
           (find_key(plain) != nullptr ? "; did you mean '" + plain + "'?)" : ")");
  if (path == "model.seed") return msg + " (the model seed is runtime.seed)";
  const auto dot = path.find('.');
  const std::string sec = dot == std::string::npos ? "" : path.substr(0, dot);
  const std::string leaf = dot == std::string::npos ? path : path.substr(dot + 1);
  const Key* best = nullptr;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const Key& k : schema()) {
    size_t d = levenshtein(path, k.path);
    if (d < best_d) best_d = d, best = &k;
  }
  const Key* same_leaf = nullptr;
  size_t same_leaf_d = std::numeric_limits<size_t>::max();
  for (const Key& k : schema()) {
    size_t d = levenshtein(path, k.path);
    if (k.leaf() == leaf && d < same_leaf_d) same_leaf_d = d, same_leaf = &k;
  }
  if (same_leaf) return msg + " (did you mean '" + same_leaf->path + "'?)";
  if (best && best_d <= std::max<size_t>(2, leaf.size() / 2)) return msg + " (did you mean '" + best->path + "'?)";
  std::vector<std::string> valid;
  for (const Key& k : schema())
    if (k.section() == sec) valid.push_back(k.leaf());
  if (valid.empty()) return msg + " (keys are section.key with sections " + join(sections(), ", ") + ")";
  return msg + " (valid keys in " + sec + ": " + join(valid, ", ") + ")";
}

// For a top-level key that is not a section: the nearest section, or a key whose leaf it resembles.
std::string unknown_section_message(const std::string& name) {
  std::string best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const std::string& s : sections()) {
    size_t d = levenshtein(name, s);
    if (d < best_d) best_d = d, best = s;
  }
  for (const Key& k : schema()) {
    size_t d = levenshtein(name, k.leaf());
    if (d < best_d) best_d = d, best = k.path;
  }
  std::string msg = "unknown section '" + shown(name, /*ascii_only=*/true) + "'";
  const std::string plain = without_escaped(name);
  if (!plain.empty()) msg += " (it holds invisible or non-ASCII characters, shown escaped)";
  if (best_d <= std::max<size_t>(2, name.size() / 2)) return msg + " (did you mean '" + best + "'?)";
  return msg + " (sections: " + join(sections(), ", ") + ")";
}

const char* node_kind(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return "nothing";
    default: return "a scalar";
  }
}

bool is_digits(const std::string& s, size_t from, size_t to) {
  if (from >= to) return false;
  for (size_t i = from; i < to; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// YAML 1.2 core-schema integer in decimal: [-+]?[0-9]+. Sets negative and magnitude; false if not one or
// if the magnitude overflows uint64.
bool parse_integer(const std::string& s, bool& negative, uint64_t& magnitude) {
  size_t i = 0;
  negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (!is_digits(s, i, s.size())) return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str() + i, &end, 10);
  if (errno == ERANGE) return false;
  magnitude = v;
  return true;
}

// YAML 1.2 core-schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, or [-+]?.inf / .nan.
bool parse_float(const std::string& s, double& out) {
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  const std::string rest = s.substr(i);
  if (rest == ".inf" || rest == ".Inf" || rest == ".INF") return out = negative ? -kInf : kInf, true;
  if (i == 0 && (rest == ".nan" || rest == ".NaN" || rest == ".NAN"))
    return out = std::numeric_limits<double>::quiet_NaN(), true;
  size_t j = i;
  size_t int_start = j;
  while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
  bool int_digits = j > int_start;
  bool frac_digits = false;
  if (j < s.size() && s[j] == '.') {
    ++j;
    size_t f = j;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    frac_digits = j > f;
  }
  if (!int_digits && !frac_digits) return false;
  if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
    ++j;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
    size_t e = j;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
    if (j == e) return false;
  }
  if (j != s.size()) return false;
  out = std::strtod(s.c_str(), nullptr);  // ERANGE overflow gives +-HUGE_VAL: then out of range
  return true;
}

std::string format_double(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  int p = 1;
  for (; p < 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // Positional notation for integral parts up to 17 digits ("10.0", not "1e+1").
  const int int_digits = v == 0 ? 1 : static_cast<int>(std::floor(std::log10(std::fabs(v)))) + 1;
  if (int_digits > p && int_digits <= 17) p = int_digits;
  std::snprintf(buf, sizeof buf, "%.*g", p, v);
  std::string s = buf;
  // Tidy the exponent: "1e-09" -> "1e-9", "5e+05" -> "5e+5".
  auto e = s.find('e');
  if (e != std::string::npos) {
    size_t d = e + 2;
    while (d + 1 < s.size() && s[d] == '0') s.erase(d, 1);
  } else if (s.find('.') == std::string::npos) {
    s += ".0";  // reads as a float to any YAML reader
  }
  return s;
}

std::string format_range(const Key& k) {
  switch (k.type) {
    case Type::kInt:
      return "[" + std::to_string(k.imin) + ", " + (k.imax == kNoMax ? "inf)" : std::to_string(k.imax) + "]");
    case Type::kUInt: return "[0, 2^64)";
    case Type::kFloat: {
      auto num = [](double x) {
        if (std::isinf(x)) return std::string(x > 0 ? "inf" : "-inf");
        std::string s = format_double(x);
        if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
        return s;
      };
      return std::string(k.lo_open ? "(" : "[") + num(k.lo) + ", " + num(k.hi) +
             (k.hi_open || std::isinf(k.hi) ? ")" : "]");
    }
    default: return "";
  }
}

// A string as a YAML scalar, as yaml-cpp's emitter writes it: plain when unambiguous, else quoted (the
// project's one way of writing YAML; the aligned layout of config.yaml around it is ours).
std::string yaml_string(const std::string& s) {
  YAML::Emitter out;
  out << s;
  return out.c_str();
}

std::string format_value(const Key& k, const Value& v) {
  switch (k.type) {
    case Type::kString:
    case Type::kChoice: return yaml_string(std::get<std::string>(v));
    case Type::kInt: return std::to_string(std::get<int64_t>(v));
    case Type::kUInt: return std::to_string(std::get<uint64_t>(v));
    case Type::kFloat: return format_double(std::get<double>(v));
    case Type::kBool: return std::get<bool>(v) ? "true" : "false";
  }
  return "";
}

// Converts and validates one YAML value for key k; throws Error("<at>: ...") on any problem.
Value convert(const Key& k, const YAML::Node& node, const std::string& at) {
  auto fail = [&](const std::string& what) -> Error { return Error(at + ": " + what); };
  static const char* type_names[] = {"a string", "an integer", "an integer", "a number", "true or false",
                                     "a string"};
  const std::string type_name = type_names[static_cast<int>(k.type)];
  if (!node.IsScalar()) {
    if (k.type == Type::kChoice)
      throw fail(k.path + " must be one of " + join(k.choices, ", ") + ", got " + node_kind(node));
    throw fail(k.path + " must be " + type_name + ", got " + node_kind(node));
  }
  const std::string text = node.Scalar();
  const bool quoted = node.Tag() == "!";  // a quoted scalar is a string to YAML
  const std::string got = "'" + shown(text) + "'" + (quoted ? " (quoted: a string)" : "");
  switch (k.type) {
    case Type::kString:
      if (k.nonempty && text.empty()) throw fail(k.path + " must not be empty");
      return text;
    case Type::kChoice:
      for (const std::string& c : k.choices)
        if (text == c) return text;
      throw fail(k.path + " = '" + shown(text) + "' must be one of " + join(k.choices, ", "));
    case Type::kBool:
      if (!quoted && text == "true") return true;
      if (!quoted && text == "false") return false;
      throw fail(k.path + " must be true or false, got " + got);
    case Type::kInt:
    case Type::kUInt: {
      bool negative = false;
      uint64_t mag = 0;
      if (quoted || !parse_integer(text, negative, mag)) {
        double d;
        if (!quoted && parse_float(text, d)) {
          // A number, but not an integer literal: "1.5", "1e5" (or too large for 64 bits).
          std::string hint;
          if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18)
            hint = " (write " + std::to_string(static_cast<long long>(d)) + ")";
          else if (is_digits(text, text[0] == '-' || text[0] == '+', text.size()))
            throw fail(k.path + " = " + shown(text) + " is out of range " + format_range(k));
          throw fail(k.path + " must be an integer, got " + got + hint);
        }
        throw fail(k.path + " must be an integer, got " + got);
      }
      if (k.type == Type::kUInt) {
        if (negative && mag != 0) throw fail(k.path + " = " + shown(text) + " is out of range " + format_range(k));
        return mag;
      }
      const uint64_t max_neg = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1;
      if ((negative && mag > max_neg) || (!negative && mag > static_cast<uint64_t>(kNoMax)))
        throw fail(k.path + " = " + shown(text) + " is out of range " + format_range(k));
      const int64_t v = negative ? (mag == max_neg ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(mag))
                                 : static_cast<int64_t>(mag);
      if (v < k.imin || v > k.imax) throw fail(k.path + " = " + shown(text) + " is out of range " + format_range(k));
      return v;
    }
    case Type::kFloat: {
      double d;
      if (quoted || !parse_float(text, d)) throw fail(k.path + " must be a number, got " + got);
      const bool above_lo = k.lo_open ? d > k.lo : d >= k.lo;
      const bool below_hi = k.hi_open || std::isinf(k.hi) ? d < k.hi : d <= k.hi;
      if (!(above_lo && below_hi)) throw fail(k.path + " = " + shown(text) + " is out of range " + format_range(k));
      return d;
    }
  }
  throw fail("internal: bad key type");
}

int line_of(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  return m.is_null() ? 0 : m.line + 1;
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ API

namespace {

using SetAt = std::map<std::string, std::string>;  // key -> where it was set ("file:12", "--set k=v")

YAML::Node load_yaml(const std::string& yaml_text, const std::string& origin) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    const int line = e.mark.is_null() ? 0 : e.mark.line + 1;
    std::string hint;
    if (yaml_text.find("\n\t") != std::string::npos || yaml_text.rfind("\t", 0) == 0)
      hint = " (indent with spaces: YAML does not allow tabs)";
    throw Error(where(origin, line) + ": invalid YAML: " + one_line(e.msg) + hint);
  }
  if (docs.size() > 1) throw Error(origin + ": invalid config: more than one YAML document");
  return docs.empty() ? YAML::Node() : docs[0];
}

// The keys of one section ("model:") into config.
void read_section(const std::string& name, const YAML::Node& body, int sec_line, const std::string& origin,
                  RunConfig& config, SetAt& set_at) {
  if (body.IsNull()) return;  // "eval:" with every key commented out
  if (!body.IsMap())
    throw Error(where(origin, sec_line) + ": section '" + name + "' must be a map of keys, got " + node_kind(body));
  for (const auto& kv : body) {
    const int line = line_of(kv.first);
    if (!kv.first.IsScalar())
      throw Error(where(origin, line) + ": a key in '" + name + "' must be a plain word, got " + node_kind(kv.first));
    const std::string path = name + "." + kv.first.Scalar();
    const Key* key = find_key(path);
    if (!key) throw Error(where(origin, line) + ": " + unknown_key_message(path));
    const std::string at = where(origin, line);
    if (!set_at.emplace(path, at).second) throw Error(at + ": duplicate key '" + path + "' (first at " + set_at[path] + ")");
    key->set(config, convert(*key, kv.second, at));
  }
}

void read_document(const YAML::Node& root, const std::string& origin, RunConfig& config, SetAt& set_at) {
  if (!root.IsDefined() || root.IsNull()) return;
  if (!root.IsMap())
    throw Error(where(origin, line_of(root)) + ": the top level must be a map of sections (" + join(sections(), ", ") +
                "), got " + node_kind(root));
  std::map<std::string, int> seen_sections;
  for (const auto& sec : root) {
    const int sec_line = line_of(sec.first);
    if (!sec.first.IsScalar())
      throw Error(where(origin, sec_line) + ": a section name must be a plain word, got " + node_kind(sec.first));
    const std::string name = sec.first.Scalar();
    const auto& names = sections();
    if (std::find(names.begin(), names.end(), name) == names.end())
      throw Error(where(origin, sec_line) + ": " + unknown_section_message(name));
    if (!seen_sections.emplace(name, sec_line).second)
      throw Error(where(origin, sec_line) + ": duplicate section '" + name + "' (first at line " +
                  std::to_string(seen_sections[name]) + ")");
    read_section(name, sec.second, sec_line, origin, config, set_at);
  }
}

// One "--set section.key=value".
void apply_override(const std::string& o, RunConfig& config, SetAt& set_at) {
  const std::string at = "--set " + shown(o);
  const auto eq = o.find('=');
  if (eq == std::string::npos) throw Error(at + ": expected section.key=value");
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t");
    const auto e = s.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  const std::string path = trim(o.substr(0, eq));
  const Key* key = find_key(path);
  if (!key) throw Error(at + ": " + unknown_key_message(path));
  YAML::Node value;
  try {
    value = YAML::Load(o.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw Error(at + ": invalid YAML value: " + one_line(e.msg));
  }
  key->set(config, convert(*key, value, at));
  set_at[path] = at;
}

// The rules between keys (the rules of a single key are in the schema; the model's own in
// EncoderConfig::validate), each error naming where the (first set) key of the pair was given.
void cross_check(const RunConfig& config, const std::string& origin, SetAt& set_at) {
  auto at = [&](const std::string& a, const std::string& b = "") {
    auto from_set = [&](const std::string& k) { return set_at.count(k) && set_at[k].rfind("--set ", 0) == 0; };
    if (!b.empty() && from_set(b) && !from_set(a)) return set_at[b];  // an override is the likelier cause
    if (set_at.count(a)) return set_at[a];
    if (!b.empty() && set_at.count(b)) return set_at[b];
    return origin;
  };
  try {
    config.model.validate();
  } catch (const SettingError& e) {
    throw Error(at(e.key(), "model.heads") + ": " + one_line(e.what()));
  }
  const DataConfig& d = config.data;
  if (config.model.max_len < d.max_len)
    throw Error(at("model.max_len", "data.max_len") + ": model.max_len = " + std::to_string(config.model.max_len) +
                " is less than data.max_len = " + std::to_string(d.max_len) +
                " (the model must accept the longest row)");
  if (d.tokens_per_batch < d.max_len)
    throw Error(at("data.tokens_per_batch", "data.max_len") + ": data.tokens_per_batch = " +
                std::to_string(d.tokens_per_batch) + " is less than data.max_len = " + std::to_string(d.max_len) +
                " (a batch must hold one full row)");
  if (!(d.valid_frac + d.test_frac < 1))
    throw Error(at("data.valid_frac", "data.test_frac") + ": data.valid_frac + data.test_frac = " +
                format_double(d.valid_frac + d.test_frac) + " leaves nothing to train on (must be < 1)");
  const TrainConfig& t = config.train;
  if (t.budget_minutes > 0 && t.max_minutes > 0 && t.budget_minutes > t.max_minutes)
    throw Error(at("train.budget_minutes", "train.max_minutes") + ": train.budget_minutes = " +
                format_double(t.budget_minutes) + " is more than train.max_minutes = " + format_double(t.max_minutes) +
                " (the run would be stopped before its schedule ends)");
  if (d.mask_frac + d.random_frac > 1)
    throw Error(at("data.mask_frac", "data.random_frac") + ": data.mask_frac + data.random_frac = " +
                format_double(d.mask_frac + d.random_frac) + " is more than 1");
}

}  // namespace

double eval_mask_rate(const RunConfig& config) {
  return config.eval.mask_rate > 0 ? config.eval.mask_rate : config.data.mask_rate;
}

RunConfig parse_config(const std::string& yaml_text, const std::string& origin,
                       const std::vector<std::string>& overrides) {
  RunConfig config;
  SetAt set_at;
  read_document(load_yaml(yaml_text, origin), origin, config, set_at);
  for (const std::string& o : overrides) apply_override(o, config, set_at);
  config.model.seed = config.runtime.seed;  // the model seed is the run seed (derived per use inside the model)
  cross_check(config, origin, set_at);
  return config;
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) throw Error(path + ": config file not found");
  if (std::filesystem::is_directory(status)) throw Error(path + ": is a directory, not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the config file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(path + ": cannot read the config file");
  return parse_config(text.str(), path, overrides);
}

OptimizerKind stored_optimizer(const std::string& yaml_text, const std::string& origin) {
  try {
    const YAML::Node node = YAML::Load(yaml_text)["train"]["optimizer"];
    return node && node.IsScalar() ? parse_optimizer(node.as<std::string>()) : OptimizerKind::kAdamW;
  } catch (const YAML::Exception& e) {
    throw Error(origin + ": its stored config is not readable YAML (" + e.what() + ")");
  }
}

std::string config_to_yaml(const RunConfig& config) {
  std::ostringstream out;
  out << "# performer run configuration, resolved (every key; `performer config --defaults` explains them)\n";
  std::string section;
  size_t width = 0;
  for (const Key& k : schema()) width = std::max(width, k.leaf().size());
  for (const Key& k : schema()) {
    if (k.section() != section) {
      section = k.section();
      out << section << ":\n";
    }
    out << "  " << k.leaf() << ":" << std::string(width - k.leaf().size() + 1, ' ') << format_value(k, k.get(config))
        << "\n";
  }
  return out.str();
}

std::string config_defaults_text() {
  const RunConfig defaults;
  struct Row {
    std::string key, def, allowed, meaning;
  };
  std::vector<Row> rows;
  for (const Key& k : schema()) {
    std::string allowed;
    switch (k.type) {
      case Type::kString: allowed = k.nonempty ? "text, non-empty" : "text"; break;
      case Type::kInt:
      case Type::kUInt: allowed = "integer " + format_range(k); break;
      case Type::kFloat: allowed = "number " + format_range(k); break;
      case Type::kBool: allowed = "true | false"; break;
      case Type::kChoice: allowed = join(k.choices, " | "); break;
    }
    rows.push_back({k.path, format_value(k, k.get(defaults)), allowed, k.meaning});
  }
  size_t wk = 3, wd = 7, wa = 7;
  for (const Row& r : rows) {
    wk = std::max(wk, r.key.size());
    wd = std::max(wd, r.def.size());
    wa = std::max(wa, r.allowed.size());
  }
  auto pad = [](const std::string& s, size_t w) { return s + std::string(w - s.size() + 2, ' '); };
  std::ostringstream out;
  out << "Run configuration: a YAML file with sections " << join(sections(), ", ") << ".\n"
      << "Missing keys take these defaults; --set section.key=value overrides one key after the file.\n"
      << "The model seed is runtime.seed.\n\n";
  out << "  " << pad("KEY", wk) << pad("DEFAULT", wd) << pad("ALLOWED", wa) << "MEANING\n";
  std::string section;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Key& k = schema()[i];
    if (k.section() != section) {
      section = k.section();
      out << "\n" << section << ":\n";
    }
    out << "  " << pad(rows[i].key, wk) << pad(rows[i].def, wd) << pad(rows[i].allowed, wa) << rows[i].meaning << "\n";
  }
  return out.str();
}

}  // namespace performer
