#include "analysis/perplexity.h"

#include <torch/torch.h>

#include <cmath>

#include "data/alphabet.h"
#include "data/masking.h"
#include "model/loss.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/names.h"

namespace performer {

namespace {

struct Row {
  std::vector<int64_t> input, labels;  // same length; labels -100 where nothing is predicted
  size_t protein = 0;
};

// Collects rows and runs the model on them in batches under a token budget (rows x longest row).
class RowRunner {
 public:
  RowRunner(Encoder& model, const torch::Device& device, int64_t budget, const std::vector<double>& freqs,
            std::vector<SequenceScore>& scores)
      : model_(model), device_(device), budget_(budget), freqs_(freqs), scores_(scores) {}

  void add(Row row) {
    const auto len = static_cast<int64_t>(row.input.size());
    const int64_t width = std::max(width_, len);
    if (!rows_.empty() && width * static_cast<int64_t>(rows_.size() + 1) > budget_) flush();
    width_ = std::max(width_, len);
    rows_.push_back(std::move(row));
  }

  void flush() {
    if (rows_.empty()) return;
    const auto B = static_cast<int64_t>(rows_.size()), W = width_;
    at::Tensor inputs = torch::full({B, W}, static_cast<int64_t>(Alphabet::kPad), torch::kLong);
    at::Tensor labels = torch::full({B, W}, kIgnoreIndex, torch::kLong);
    at::Tensor mask = torch::zeros({B, W}, torch::kBool);
    for (int64_t b = 0; b < B; ++b) {
      const Row& r = rows_[static_cast<size_t>(b)];
      const auto n = static_cast<int64_t>(r.input.size());
      std::copy(r.input.begin(), r.input.end(), inputs.data_ptr<int64_t>() + b * W);
      std::copy(r.labels.begin(), r.labels.end(), labels.data_ptr<int64_t>() + b * W);
      mask[b].narrow(0, 0, n).fill_(true);
    }
    const LossSums sums = cross_entropy_sums(model_(inputs.to(device_), mask.to(device_)), labels.to(device_));
    const at::Tensor row_loss = sums.row_loss.cpu(), row_correct = sums.row_correct.cpu(), row_count = sums.row_count.cpu();
    auto loss = row_loss.accessor<double, 1>();
    auto correct = row_correct.accessor<int64_t, 1>();
    auto count = row_count.accessor<int64_t, 1>();
    auto lab = labels.accessor<int64_t, 2>();
    for (int64_t b = 0; b < B; ++b) {
      SequenceScore& s = scores_[rows_[static_cast<size_t>(b)].protein];
      s.nll += loss[b];
      s.correct += correct[b];
      s.scored += count[b];
      if (freqs_.empty()) continue;
      for (int64_t i = 0; i < W; ++i)
        if (lab[b][i] != kIgnoreIndex) s.unigram_nll -= std::log(freqs_[static_cast<size_t>(lab[b][i])]);
    }
    rows_.clear();
    width_ = 0;
  }

 private:
  Encoder& model_;
  torch::Device device_;
  int64_t budget_;
  const std::vector<double>& freqs_;
  std::vector<SequenceScore>& scores_;
  std::vector<Row> rows_;
  int64_t width_ = 0;
};

}  // namespace

const std::vector<std::string>& eval_mode_names() {
  static const std::vector<std::string> names{"masked", "pseudo", "causal"};
  return names;
}

EvalMode parse_eval_mode(const std::string& s) { return parse_name<EvalMode>(s, eval_mode_names(), "eval: mode"); }

std::string eval_mode_name(EvalMode m) { return name_of(m, eval_mode_names()); }

void check_mode(EvalMode mode, bool causal_model) {
  if (mode == EvalMode::kCausal && !causal_model)
    throw Error("eval: --mode causal needs a causal model (this one is bidirectional: use masked or pseudo)");
  if (mode != EvalMode::kCausal && causal_model)
    throw Error("eval: --mode " + eval_mode_name(mode) + " needs a bidirectional model; this one is causal (it was "
                "trained on next-token prediction and never saw masked input): use --mode causal");
}

std::vector<SequenceScore> score_proteins(Encoder& model, const std::vector<std::pair<std::string, std::string>>& proteins,
                                          const PerplexityOptions& o, const torch::Device& device) {
  check_mode(o.mode, model->config().causal);
  if (!o.train_frequencies.empty() && o.train_frequencies.size() != Alphabet::kSize)
    throw Error("eval: train frequencies must have 33 entries");
  const int64_t window = model->config().max_len - 2;
  if (o.tokens_per_batch < window + 2) throw Error("eval: tokens per batch must be at least the model's max_len");
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<SequenceScore> scores(proteins.size());
  RowRunner runner(model, device, o.tokens_per_batch, o.train_frequencies, scores);
  const int64_t repeats = o.mode == EvalMode::kMasked ? std::max<int64_t>(1, o.repeats) : 1;
  const MaskingOptions masking{o.mask_rate, o.strict ? 1.0 : o.mask_frac, o.strict ? 0.0 : o.random_frac};
  for (size_t p = 0; p < proteins.size(); ++p) {
    scores[p].accession = proteins[p].first;
    const std::vector<Token> ids = Alphabet::encode(proteins[p].second);  // <cls> residues <eos>
    const auto n = static_cast<int64_t>(ids.size()) - 2;
    scores[p].length = n;
    for (int64_t start = 0, w = 0; start < n; start += window, ++w) {
      const int64_t len = std::min(window, n - start);
      std::vector<int64_t> tokens;
      tokens.push_back(Alphabet::kCls);
      for (int64_t i = 0; i < len; ++i) tokens.push_back(ids[static_cast<size_t>(1 + start + i)]);
      tokens.push_back(Alphabet::kEos);
      if (o.mode == EvalMode::kCausal) {
        Row r{std::vector<int64_t>(tokens.begin(), tokens.end() - 1), std::vector<int64_t>(tokens.size() - 1, kIgnoreIndex), p};
        for (int64_t i = 0; i < len; ++i) r.labels[static_cast<size_t>(i)] = tokens[static_cast<size_t>(i + 1)];
        runner.add(std::move(r));
      } else if (o.mode == EvalMode::kPseudo) {
        for (int64_t i = 1; i <= len; ++i) {
          Row r{tokens, std::vector<int64_t>(tokens.size(), kIgnoreIndex), p};
          r.labels[static_cast<size_t>(i)] = tokens[static_cast<size_t>(i)];
          r.input[static_cast<size_t>(i)] = Alphabet::kMask;
          runner.add(std::move(r));
        }
      } else {
        for (int64_t rep = 0; rep < repeats; ++rep) {
          at::Tensor t = torch::tensor(tokens, torch::kLong).unsqueeze(0);
          MaskedTokens m = mask_tokens(t, masking, derive_seed(o.seed, static_cast<uint64_t>(rep), p, static_cast<uint64_t>(w)));
          Row r{std::vector<int64_t>(m.inputs.data_ptr<int64_t>(), m.inputs.data_ptr<int64_t>() + m.inputs.numel()),
                std::vector<int64_t>(m.labels.data_ptr<int64_t>(), m.labels.data_ptr<int64_t>() + m.labels.numel()), p};
          runner.add(std::move(r));
        }
      }
    }
  }
  runner.flush();
  if (was_training) model->train();
  return scores;
}

PerplexitySummary summarize(const std::vector<SequenceScore>& scores, uint64_t seed) {
  PerplexitySummary s;
  double nll = 0, uni = 0;
  int64_t correct = 0;
  for (auto& x : scores) {
    if (x.scored == 0) continue;
    ++s.sequences;
    s.scored += x.scored;
    nll += x.nll;
    uni += x.unigram_nll;
    correct += x.correct;
  }
  if (s.scored == 0) throw Error("eval: no residue was scored (empty input, or no position selected for masking)");
  s.loss = nll / static_cast<double>(s.scored);
  s.perplexity = std::exp(s.loss);
  s.accuracy = static_cast<double>(correct) / static_cast<double>(s.scored);
  s.unigram_perplexity = uni > 0 ? std::exp(uni / static_cast<double>(s.scored)) : std::nan("");
  // Per-sequence bootstrap: resample sequences with replacement, recompute the pooled perplexity.
  std::vector<const SequenceScore*> used;
  for (auto& x : scores)
    if (x.scored > 0) used.push_back(&x);
  Rng rng(seed);
  std::vector<double> ppl;
  for (int b = 0; b < 1000; ++b) {
    double bn = 0;
    int64_t bc = 0;
    for (size_t i = 0; i < used.size(); ++i) {
      const SequenceScore* x = used[rng.below(used.size())];
      bn += x->nll;
      bc += x->scored;
    }
    ppl.push_back(std::exp(bn / static_cast<double>(bc)));
  }
  std::sort(ppl.begin(), ppl.end());
  s.ci_low = ppl[25];
  s.ci_high = ppl[974];
  return s;
}

PairedDifference paired_difference(const std::vector<SequenceScore>& a, const std::vector<SequenceScore>& b,
                                   uint64_t seed) {
  if (a.size() != b.size()) throw Error("paired perplexity: the two lists of proteins differ in length");
  std::vector<size_t> used;
  double na = 0, nb = 0;
  int64_t scored = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].scored != b[i].scored)
      throw Error("paired perplexity: protein " + a[i].accession + " has " + std::to_string(a[i].scored) + " and " +
                  std::to_string(b[i].scored) + " scored residues (different masks or windows)");
    if (a[i].scored == 0) continue;
    used.push_back(i);
    na += a[i].nll;
    nb += b[i].nll;
    scored += a[i].scored;
  }
  if (scored == 0) throw Error("paired perplexity: no residue was scored");
  PairedDifference d;
  d.sequences = static_cast<int64_t>(used.size());
  d.a = std::exp(na / static_cast<double>(scored));
  d.b = std::exp(nb / static_cast<double>(scored));
  d.difference = d.a - d.b;
  Rng rng(seed);
  std::vector<double> diffs;
  for (int r = 0; r < 1000; ++r) {
    double ba = 0, bb = 0;
    int64_t bc = 0;
    for (size_t k = 0; k < used.size(); ++k) {
      const size_t i = used[rng.below(used.size())];
      ba += a[i].nll;
      bb += b[i].nll;
      bc += a[i].scored;
    }
    diffs.push_back(std::exp(ba / static_cast<double>(bc)) - std::exp(bb / static_cast<double>(bc)));
  }
  std::sort(diffs.begin(), diffs.end());
  d.ci_low = diffs[25];
  d.ci_high = diffs[974];
  return d;
}

}  // namespace performer
