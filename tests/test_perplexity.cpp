#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "analysis/perplexity.h"
#include "data/alphabet.h"
#include "test_util.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

EncoderConfig small(int64_t max_len = 64) {
  EncoderConfig c;
  c.kind = AttentionKind::kFavorRelu;
  c.layers = 2;
  c.heads = 2;
  c.d_model = 32;
  c.d_ff = 64;
  c.features = 16;
  c.dropout = 0.1;  // must be off in evaluation
  c.max_len = max_len;
  c.seed = 5;
  return c;
}

std::vector<std::pair<std::string, std::string>> real_proteins(size_t n) {
  auto recs = read_all(data_path("real_excerpt.fasta"));
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < n && i < recs.size(); ++i) out.emplace_back(recs[i].accession, recs[i].residues);
  return out;
}

}  // namespace

TEST(Perplexity, UniformLogitsGiveTheVocabularySize) {
  // Zero final LayerNorm and LM bias: logits are 0 for all 33 tokens, so perplexity is exactly 33
  // (the softmax is over the full vocabulary, specials included).
  Encoder model(small());
  {
    torch::NoGradGuard g;
    model->final_norm->weight.zero_();
    model->final_norm->bias.zero_();
    model->lm_bias.zero_();
  }
  auto proteins = real_proteins(5);
  for (std::string mode : {"masked", "pseudo"}) {
    PerplexityOptions o;
    o.mode = parse_eval_mode(mode);
    PerplexitySummary s = summarize(score_proteins(model, proteins, o, torch::kCPU));
    EXPECT_NEAR(s.perplexity, 33.0, 1e-3) << mode;
    EXPECT_GT(s.scored, 0);
  }
}

TEST(Perplexity, MaskedIsReproducibleAndCoversLongProteinsInWindows) {
  Encoder model(small(40));  // windows of 38 residues
  auto proteins = real_proteins(6);
  PerplexityOptions o;
  o.repeats = 2;
  auto a = score_proteins(model, proteins, o, torch::kCPU);
  auto b = score_proteins(model, proteins, o, torch::kCPU);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].scored, b[i].scored);
    EXPECT_DOUBLE_EQ(a[i].nll, b[i].nll);
  }
  // Pseudo mode scores every residue exactly once, however long the protein.
  o.mode = EvalMode::kPseudo;
  auto p = score_proteins(model, proteins, o, torch::kCPU);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_EQ(p[i].scored, static_cast<int64_t>(proteins[i].second.size()));
  PerplexitySummary s = summarize(p);
  EXPECT_LE(s.ci_low, s.perplexity);
  EXPECT_GE(s.ci_high, s.perplexity);
}

TEST(Perplexity, PseudoEqualsNaiveOneByOneLoop) {
  Encoder model(small());
  model->eval();
  const std::string seq = "MKTAYIAKQRQISFVKSHFSRQ";
  PerplexityOptions o;
  o.mode = EvalMode::kPseudo;
  o.tokens_per_batch = 200;  // several batches
  auto scores = score_proteins(model, {{"p", seq}}, o, torch::kCPU);
  double naive = 0;
  torch::NoGradGuard g;
  std::vector<Token> ids = Alphabet::encode(seq);
  for (size_t i = 1; i + 1 < ids.size(); ++i) {
    std::vector<int64_t> in(ids.begin(), ids.end());
    in[i] = Alphabet::kMask;
    at::Tensor t = torch::tensor(in, torch::kLong).unsqueeze(0);
    at::Tensor logp = at::log_softmax(model(t, torch::ones_like(t, torch::kBool)), -1);
    naive -= logp[0][static_cast<int64_t>(i)][ids[i]].item<double>();
  }
  ASSERT_EQ(scores[0].scored, static_cast<int64_t>(seq.size()));
  EXPECT_NEAR(scores[0].nll, naive, 1e-4);
}

// Paired difference: pooled perplexities equal the naive sums; one model better by 0.01 nats on every residue
// of proteins whose losses spread widely is resolved (its interval excludes 0 and is far narrower than either
// model's own interval); identical scores differ by exactly 0; a pair scored differently is refused by name.
TEST(Perplexity, PairedDifferenceResolvesWhatTheSeparateIntervalsCannot) {
  std::vector<SequenceScore> a, b;
  for (int i = 0; i < 200; ++i) {
    SequenceScore s;
    s.accession = "P" + std::to_string(i);
    s.scored = 20 + (i * 37) % 90;
    const double per_residue = 2.2 + 0.8 * std::sin(0.7 * i);  // proteins from easy to hard
    s.nll = per_residue * static_cast<double>(s.scored);
    b.push_back(s);
    s.nll -= 0.01 * static_cast<double>(s.scored);
    a.push_back(s);
  }
  double na = 0, nb = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    na += a[i].nll;
    nb += b[i].nll;
    n += static_cast<double>(a[i].scored);
  }
  const PairedDifference d = paired_difference(a, b);
  EXPECT_EQ(d.sequences, 200);
  EXPECT_NEAR(d.a, std::exp(na / n), 1e-12 * d.a);
  EXPECT_NEAR(d.b, std::exp(nb / n), 1e-12 * d.b);
  EXPECT_NEAR(d.difference, d.a - d.b, 1e-12);
  EXPECT_LT(d.ci_high, 0.0);
  EXPECT_LE(d.ci_low, d.difference);
  EXPECT_GE(d.ci_high, d.difference);
  const PerplexitySummary sa = summarize(a), sb = summarize(b);
  EXPECT_GT(sa.ci_high, sb.ci_low) << "the separate intervals overlap: they cannot tell the two apart";
  EXPECT_LT(d.ci_high - d.ci_low, 0.1 * (sa.ci_high - sa.ci_low));

  const PairedDifference same = paired_difference(b, b);
  EXPECT_EQ(same.difference, 0.0);
  EXPECT_EQ(same.ci_low, 0.0);
  EXPECT_EQ(same.ci_high, 0.0);
  b[3].scored += 1;
  try {
    paired_difference(a, b);
    FAIL() << "a pair with different scored residues was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("P3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(paired_difference(a, {}), Error);
}
