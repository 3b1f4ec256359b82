#include <gtest/gtest.h>
#include <torch/torch.h>

#include "analysis/perplexity.h"
#include "data/alphabet.h"
#include "test_util.h"

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
