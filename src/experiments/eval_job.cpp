#include "experiments/eval_job.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "analysis/perplexity.h"
#include "data/corpus.h"
#include "data/sequence_reader.h"
#include "io/hdf5.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/trainer.h"
#include "util/device.h"
#include "util/error.h"
#include "util/files.h"
#include "util/names.h"

namespace performer {

namespace {

// One scored figure: its key in summary.json, its label in the printed table.
struct Result {
  std::string key, label;
  PerplexitySummary summary;
};

std::string mode_label(EvalMode mode) {
  switch (mode) {
    case EvalMode::kMasked: return "masked (standard)";
    case EvalMode::kPseudo: return "pseudo-perplexity";
    case EvalMode::kCausal: return "next-token (causal)";
  }
  return "";
}


// The files eval writes (under --out) must not be any of its inputs.
void check_outputs(const EvalJob& a) {
  if (a.out.empty()) return;
  std::vector<InputFile> inputs{{"--checkpoint", a.checkpoint}, {"--corpus", a.corpus}, {"--train-corpus", a.train_corpus}};
  for (const std::string& in : a.inputs) inputs.push_back({"--input", in});
  if (!a.paired_with.empty())
    inputs.push_back({"--paired-with", std::filesystem::is_directory(a.paired_with)
                                           ? (std::filesystem::path(a.paired_with) / "per_sequence.tsv").string()
                                           : a.paired_with});
  const std::filesystem::path out(a.out);
  refuse_overwriting_inputs("--out", {a.out, (out / "per_sequence.tsv").string(), (out / "summary.json").string()}, inputs);
}

// The training corpus of a run: --train-corpus, else <output.dir>/corpus.h5 or data.train when it is a corpus.
std::string find_train_corpus(const EvalJob& a, const RunConfig& c) {
  if (!a.train_corpus.empty()) return a.train_corpus;
  for (const std::string& p : {(std::filesystem::path(c.output.dir) / "corpus.h5").string(), c.data.train})
    if (h5::is_hdf5(p)) return p;
  return "";
}

std::string text(const Token* t, int64_t n) { return Alphabet::decode(t, static_cast<size_t>(n), true); }

void report(const char* label, const PerplexitySummary& s, FILE* out) {
  std::fprintf(out, "%-28s perplexity %.3f (95%% CI %.3f-%.3f), accuracy %.3f, loss %.4f; %lld residues of %lld proteins\n",
               label, s.perplexity, s.ci_low, s.ci_high, s.accuracy, s.loss, static_cast<long long>(s.scored),
               static_cast<long long>(s.sequences));
}

// A number for JSON: NaN and infinities (no value in JSON) become null.
nlohmann::json number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

nlohmann::json json_summary(const PerplexitySummary& s) {
  return {{"perplexity", number(s.perplexity)},
          {"ci95", {number(s.ci_low), number(s.ci_high)}},
          {"accuracy", number(s.accuracy)},
          {"loss", number(s.loss)},
          {"residues", s.scored},
          {"proteins", s.sequences},
          {"unigram_perplexity", number(s.unigram_perplexity)}};
}

using Proteins = std::vector<std::pair<std::string, std::string>>;  // accession, residues

Proteins read_proteins(const EvalJob& a) {
  Proteins proteins;
  if (!a.corpus.empty()) {
    Corpus corpus = Corpus::load(a.corpus);
    for (size_t i : corpus.indices(parse_split(a.split)))
      proteins.emplace_back(corpus.accession(i), text(corpus.residues(i).data(), corpus.length(i)));
    return proteins;
  }
  for (auto& path : a.inputs) {
    SequenceReader reader(path, a.reader);
    SequenceRecord rec;
    while (reader.next(rec)) proteins.emplace_back(rec.accession, rec.residues);
    warn_about(path, reader.counts(), a.reader.gaps);
  }
  return proteins;
}

// Takes the unigram baseline's frequencies from the training corpus and, unless kept, leaves out the
// proteins identical to a training protein; returns how many were left out.
int64_t use_training_corpus(const std::string& train_path, bool keep_overlap, Proteins& proteins, PerplexityOptions& po) {
  Corpus train = Corpus::load(train_path, false);
  auto f = train.stats().train_frequencies();
  po.train_frequencies.assign(f.begin(), f.end());
  if (keep_overlap) return 0;
  std::unordered_set<std::string> seen;
  for (size_t i : train.indices(Split::kTrain)) seen.insert(text(train.residues(i).data(), train.length(i)));
  Proteins kept;
  int64_t overlap = 0;
  for (auto& p : proteins) {
    if (seen.count(p.second))
      ++overlap;
    else
      kept.push_back(std::move(p));
  }
  proteins.swap(kept);
  return overlap;
}

// per_sequence.tsv (the primary mode's scores) and summary.json (every figure) in `out`.
void write_outputs(const std::string& out, const EvalJob& a, const PerplexityOptions& po, Precision precision,
                   int64_t overlap,
                   const std::vector<SequenceScore>& primary,
                   const std::vector<Result>& results, const nlohmann::json& paired) {
  std::filesystem::create_directories(out);
  std::ostringstream tsv;
  tsv << "accession\tlength\tscored\tloss\tperplexity\taccuracy\n";
  tsv << std::setprecision(17);  // the loss exactly: --paired-with reads it back
  for (auto& s : primary) {
    if (s.scored == 0) continue;
    const double loss = s.nll / static_cast<double>(s.scored);
    tsv << s.accession << '\t' << s.length << '\t' << s.scored << '\t' << loss << '\t' << std::exp(loss) << '\t'
        << static_cast<double>(s.correct) / static_cast<double>(s.scored) << '\n';
  }
  nlohmann::json j = {{"checkpoint", a.checkpoint},
                      {"mode", eval_mode_name(po.mode)},
                      {"repeats", po.repeats},
                      {"mask_rate", po.mode == EvalMode::kMasked ? nlohmann::json(po.mask_rate) : nlohmann::json()},
                      {"precision", precision_name(precision)},
                      {"left_out_training_overlap", overlap},
                      {"uniform_perplexity", CorpusStats::kUniformPerplexity}};
  for (const Result& r : results) j[r.key] = json_summary(r.summary);
  if (!paired.is_null()) j["paired"] = paired;
  write_text_file((std::filesystem::path(out) / "per_sequence.tsv").string(), tsv.str());
  write_text_file((std::filesystem::path(out) / "summary.json").string(), j.dump(2) + "\n");
  std::printf("wrote %s/per_sequence.tsv and %s/summary.json\n", out.c_str(), out.c_str());
}

// --paired-with: the other model's scores (by accession) from its per_sequence.tsv, read before any scoring so
// that a bad file fails at once.
struct OtherScores {
  std::string path;
  std::map<std::string, SequenceScore> scores;
};
OtherScores read_other_scores(const std::string& given) {
  const std::string path = std::filesystem::is_directory(given) ? (std::filesystem::path(given) / "per_sequence.tsv").string() : given;
  std::ifstream in(path);
  if (!in) throw Error("--paired-with " + path + ": cannot be read");
  std::string line;
  std::getline(in, line);
  if (line.rfind("accession\tlength\tscored\tloss", 0) != 0)
    throw Error("--paired-with " + path + ": line 1: not a per_sequence.tsv of performer eval");
  std::map<std::string, SequenceScore> other;
  for (int64_t n = 2; std::getline(in, line); ++n) {
    std::istringstream row(line);
    SequenceScore s;
    double loss = 0;
    if (!(row >> s.accession >> s.length >> s.scored >> loss))
      throw Error("--paired-with " + path + ": line " + std::to_string(n) + ": expected accession, length, scored, loss");
    s.nll = loss * static_cast<double>(s.scored);
    if (!other.emplace(s.accession, s).second)
      throw Error("--paired-with " + path + ": line " + std::to_string(n) + ": accession " + s.accession +
                  " appears twice (proteins are paired by accession)");
  }
  return {path, std::move(other)};
}

// The difference (this - other) on the shared proteins with its paired interval, printed; returned for
// summary.json.
nlohmann::json paired_with(const OtherScores& o, const std::vector<SequenceScore>& mine) {
  const std::string& path = o.path;
  const auto& other = o.scores;
  std::vector<SequenceScore> a, b;
  for (const SequenceScore& s : mine) {
    auto it = other.find(s.accession);
    if (s.scored == 0 || it == other.end()) continue;
    a.push_back(s);
    b.push_back(it->second);
  }
  if (a.empty()) throw Error("--paired-with " + path + ": no protein in common with this evaluation");
  PairedDifference d;
  try {
    d = paired_difference(a, b);
  } catch (const Error& e) {
    throw Error("--paired-with " + path + ": " + e.what());
  }
  std::printf("paired with %s: %lld shared proteins, perplexity %.3f vs %.3f, difference %+.3f (95%% paired CI %+.3f to %+.3f)\n",
              path.c_str(), static_cast<long long>(d.sequences), d.a, d.b, d.difference, d.ci_low, d.ci_high);
  return {{"with", path},           {"proteins", d.sequences},        {"perplexity", d.a},
          {"other_perplexity", d.b}, {"difference", d.difference}, {"ci95", {d.ci_low, d.ci_high}}};
}

}  // namespace

int run_eval_job(const EvalJob& a) {
  if (a.inputs.empty() == a.corpus.empty()) throw Error("eval: give either --input FILE... or --corpus corpus.h5");
  check_outputs(a);
  const OtherScores other = a.paired_with.empty() ? OtherScores{} : read_other_scores(a.paired_with);
  const torch::Device device = resolve_device(a.device, "--device");
  RunConfig c;
  Encoder model = model_from_checkpoint(a.checkpoint, c, device);
  const Precision precision = resolve_precision(parse_precision(a.precision, "--precision"), device);
  PerplexityOptions po = a.perplexity;
  po.mask_rate = a.mask_rate > 0 ? a.mask_rate : eval_mask_rate(c);  // the run's evaluation masking by default
  po.mask_frac = c.data.mask_frac;
  po.random_frac = c.data.random_frac;
  po.mode = a.mode == kAutoEvalMode ? (c.model.causal ? EvalMode::kCausal : EvalMode::kMasked) : parse_eval_mode(a.mode);
  check_mode(po.mode, c.model.causal);
  if (a.mask_rate > 0 && po.mode != EvalMode::kMasked)
    throw Error("eval: --mask-rate applies to masked mode only (this evaluation is " + eval_mode_name(po.mode) + ")");
  Proteins proteins = read_proteins(a);
  const std::string train_path = find_train_corpus(a, c);
  const int64_t overlap = train_path.empty() ? 0 : use_training_corpus(train_path, a.keep_overlap, proteins, po);
  std::printf("model %s: %s, step %lld, %s\n", a.checkpoint.c_str(), c.model.describe().c_str(),
              static_cast<long long>(checkpoint_step(a.checkpoint)), precision_name(precision).c_str());
  if (!train_path.empty())
    std::printf("training corpus %s: %lld input proteins identical to training proteins left out%s\n", train_path.c_str(),
                static_cast<long long>(overlap), a.keep_overlap ? " (kept: --keep-train-overlap)" : "");
  else
    std::printf("no training corpus found (--train-corpus): no unigram baseline, overlap with training not checked\n");
  if (proteins.empty()) throw Error("eval: no proteins left to evaluate");

  std::vector<Result> results;
  const AutocastScope autocast(device, precision);
  const std::vector<SequenceScore> primary = score_proteins(model, proteins, po, device);
  results.push_back({eval_mode_name(po.mode), mode_label(po.mode), summarize(primary)});
  if (po.mode == EvalMode::kMasked) {
    PerplexityOptions strict = po;
    strict.strict = true;
    results.push_back({"masked_all", "masked (all <mask>)", summarize(score_proteins(model, proteins, strict, device))});
  }
  for (const Result& r : results) report(r.label.c_str(), r.summary, stdout);
  const PerplexitySummary& head = results.front().summary;
  std::printf("%-28s perplexity %.3f\n", "baseline: uniform over 20 aa", CorpusStats::kUniformPerplexity);
  if (!std::isnan(head.unigram_perplexity))
    std::printf("%-28s perplexity %.3f (same residues, training frequencies)\n", "baseline: unigram", head.unigram_perplexity);
  const nlohmann::json paired = a.paired_with.empty() ? nlohmann::json() : paired_with(other, primary);
  if (!a.out.empty()) write_outputs(a.out, a, po, precision, overlap, primary, results, paired);
  return 0;
}

}  // namespace performer
