// performer eval --checkpoint CKPT (--input FASTA... | --corpus corpus.h5 --split test)
//                [--mode auto|masked|pseudo|causal] [--repeats K] [--train-corpus corpus.h5] [--out DIR]
// Held-out perplexity of a trained model (analysis/perplexity.h), beside the uniform (20 amino acids) and
// unigram (training frequencies) baselines. Proteins identical to a training-split protein of the
// training corpus are left out (and counted), so "held-out" means unseen.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "analysis/perplexity.h"
#include "cli/commands.h"
#include "data/corpus.h"
#include "data/sequence_reader.h"
#include "io/checkpoint.h"
#include "io/hdf5.h"
#include "train/config.h"
#include "train/trainer.h"
#include "util/device.h"
#include "util/error.h"

namespace performer::cli {

namespace {

struct EvalArgs {
  std::string checkpoint, corpus, split = "test", train_corpus, out, device = "auto";
  std::vector<std::string> inputs;
  PerplexityOptions perplexity;
  bool keep_overlap = false;
};

// The training corpus of a run: --train-corpus, else <output.dir>/corpus.h5 or data.train when it is a corpus.
std::string find_train_corpus(const EvalArgs& a, const RunConfig& c) {
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

int run_eval(const EvalArgs& a) {
  if (a.inputs.empty() == a.corpus.empty()) throw Error("eval: give either --input FILE... or --corpus corpus.h5");
  const torch::Device device = resolve_device(a.device);
  RunConfig c;
  Encoder model = model_from_checkpoint(a.checkpoint, c, device);
  if (a.perplexity.mode != "auto") check_mode(a.perplexity.mode, c.model.causal);

  std::vector<std::pair<std::string, std::string>> proteins;
  if (!a.corpus.empty()) {
    Corpus corpus = Corpus::load(a.corpus);
    for (size_t i : corpus.indices(parse_split(a.split)))
      proteins.emplace_back(corpus.accession(i), text(corpus.sequence(i), corpus.length(i)));
  } else {
    for (auto& path : a.inputs) {
      SequenceReader reader(path);
      SequenceRecord rec;
      while (reader.next(rec)) proteins.emplace_back(rec.accession, rec.residues);
    }
  }
  PerplexityOptions po = a.perplexity;
  if (po.mode == "auto") po.mode = c.model.causal ? "causal" : "masked";
  const std::string train_path = find_train_corpus(a, c);
  int64_t overlap = 0;
  if (!train_path.empty()) {
    Corpus train = Corpus::load(train_path, false);
    auto f = train.stats().train_frequencies();
    po.train_frequencies.assign(f.begin(), f.end());
    if (!a.keep_overlap) {
      std::unordered_set<std::string> seen;
      for (size_t i : train.indices(Split::kTrain)) seen.insert(text(train.sequence(i), train.length(i)));
      std::vector<std::pair<std::string, std::string>> kept;
      for (auto& p : proteins) {
        if (seen.count(p.second))
          ++overlap;
        else
          kept.push_back(std::move(p));
      }
      proteins.swap(kept);
    }
  }
  std::printf("model %s: %s, step %s\n", a.checkpoint.c_str(), c.model.describe().c_str(),
              std::to_string(h5::read_attr_int(h5::open_file(a.checkpoint), "step")).c_str());
  if (!train_path.empty())
    std::printf("training corpus %s: %lld input proteins identical to training proteins left out%s\n", train_path.c_str(),
                static_cast<long long>(overlap), a.keep_overlap ? " (kept: --keep-train-overlap)" : "");
  else
    std::printf("no training corpus found (--train-corpus): no unigram baseline, overlap with training not checked\n");
  if (proteins.empty()) throw Error("eval: no proteins left to evaluate");

  std::vector<std::pair<std::string, PerplexitySummary>> results;
  std::vector<SequenceScore> primary;
  if (po.mode == "masked") {
    primary = score_proteins(model, proteins, po, device);
    results.emplace_back("masked", summarize(primary));
    PerplexityOptions strict = po;
    strict.strict = true;
    results.emplace_back("masked_all", summarize(score_proteins(model, proteins, strict, device)));
  } else {
    primary = score_proteins(model, proteins, po, device);
    results.emplace_back(po.mode, summarize(primary));
  }
  for (auto& [name, s] : results) {
    std::string label = name == "masked"       ? "masked (80/10/10)"
                        : name == "masked_all" ? "masked (all <mask>)"
                        : name == "pseudo"     ? "pseudo-perplexity"
                                               : "next-token (causal)";
    report(label.c_str(), s, stdout);
  }
  const PerplexitySummary& head = results.front().second;
  std::printf("%-28s perplexity 20.000\n", "baseline: uniform over 20 aa");
  if (!std::isnan(head.unigram_perplexity))
    std::printf("%-28s perplexity %.3f (same residues, training frequencies)\n", "baseline: unigram", head.unigram_perplexity);

  if (!a.out.empty()) {
    std::filesystem::create_directories(a.out);
    std::ofstream tsv(std::filesystem::path(a.out) / "per_sequence.tsv");
    tsv << "accession\tlength\tscored\tloss\tperplexity\taccuracy\n";
    for (auto& s : primary) {
      if (s.scored == 0) continue;
      const double loss = s.nll / static_cast<double>(s.scored);
      tsv << s.accession << '\t' << s.length << '\t' << s.scored << '\t' << loss << '\t' << std::exp(loss) << '\t'
          << static_cast<double>(s.correct) / static_cast<double>(s.scored) << '\n';
    }
    nlohmann::json j = {{"checkpoint", a.checkpoint},
                        {"mode", po.mode},
                        {"repeats", po.repeats},
                        {"left_out_training_overlap", overlap},
                        {"uniform_perplexity", 20}};
    for (auto& [name, s] : results) j[name] = json_summary(s);
    const std::string path = (std::filesystem::path(a.out) / "summary.json").string();
    std::ofstream out(path);
    out << j.dump(2) << "\n";
    if (!out.flush()) throw Error(path + ": cannot write");
    std::printf("wrote %s/per_sequence.tsv and %s/summary.json\n", a.out.c_str(), a.out.c_str());
  }
  return 0;
}

}  // namespace

void add_eval(CLI::App& app, Action& run) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Held-out perplexity of a checkpoint on FASTA/UniProt files or a corpus split");
  cmd->add_option("--checkpoint", a->checkpoint, "checkpoint (.h5) written by performer train")->required();
  cmd->add_option("-i,--input", a->inputs, "FASTA or UniProt files (plain or gzip)");
  cmd->add_option("--corpus", a->corpus, "a prepared corpus instead of --input");
  cmd->add_option("--split", a->split, "split of --corpus: train | valid | test")->capture_default_str();
  a->perplexity.mode = "auto";
  cmd->add_option("--mode", a->perplexity.mode, "auto (causal for causal models, else masked) | masked | pseudo | causal")
      ->check(CLI::IsMember({"auto", "masked", "pseudo", "causal"}))
      ->capture_default_str();
  cmd->add_option("--repeats", a->perplexity.repeats, "masked mode: masks averaged (seeds seed..seed+K-1)")->capture_default_str();
  cmd->add_option("--seed", a->perplexity.seed, "masking seed")->capture_default_str();
  cmd->add_option("--tokens-per-batch", a->perplexity.tokens_per_batch, "token budget per forward pass")->capture_default_str();
  cmd->add_option("--train-corpus", a->train_corpus, "training corpus: unigram baseline and overlap removal "
                                                      "(default: the run's corpus.h5)");
  cmd->add_flag("--keep-train-overlap", a->keep_overlap, "do not leave out proteins identical to training proteins");
  cmd->add_option("--device", a->device, "auto | cpu | cuda")->capture_default_str();
  cmd->add_option("--out", a->out, "folder for per_sequence.tsv and summary.json");
  cmd->callback([&run, a] { run = [a] { return run_eval(*a); }; });
}

}  // namespace performer::cli
