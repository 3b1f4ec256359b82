// Training loop, optimizer, checkpoints and exact resume.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include "train/checkpoint.h"
#include "model/encoder.h"
#include "train/config.h"
#include "train/evaluate.h"
#include "train/flops.h"
#include "train/optimizer.h"
#include "train/trainer.h"
#include "test_util.h"
#include "util/error.h"
#include "util/precision.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

TEST(Optimizer, AdamWMatchesLibTorchAdamW) {
  torch::manual_seed(0);
  at::Tensor a = torch::randn({5, 4}), b = a.clone();
  a.requires_grad_();
  b.requires_grad_();
  Optimizer mine({{"w", a}}, OptimizerOptions{0.9, 0.98, 1e-8, 0.1});
  torch::optim::AdamW ref({b}, torch::optim::AdamWOptions(0.01).betas({0.9, 0.98}).eps(1e-8).weight_decay(0.1));
  for (int step = 0; step < 5; ++step) {
    at::Tensor g = torch::randn({5, 4});
    a.mutable_grad() = g.clone();
    b.mutable_grad() = g.clone();
    mine.step(0.01);
    ref.step();
  }
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-6);
  EXPECT_EQ(mine.step_count(), 5);
}

TEST(Optimizer, AdamWDecaysWeightMatricesOnlyNotBiasesOrNorms) {
  // The reason the optimizer is written out: decoupled weight decay applies to weight matrices and embeddings
  // (>= 2 dimensions), never to biases, LayerNorm gains/shifts or lm_bias (1-D). With zero gradients the
  // Adam update is 0, so one step shows the decay alone: 2-D shrink by (1 - lr wd), 1-D stay bit-identical.
  Encoder model([] {
    EncoderConfig c;
    c.layers = 1;
    c.heads = 2;
    c.d_model = 16;
    c.d_ff = 32;
    c.features = 8;
    c.max_len = 16;
    return c;
  }());
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::map<std::string, at::Tensor> before;
  for (auto& p : model->named_parameters()) {
    params.emplace_back(p.key(), p.value());
    before[p.key()] = p.value().detach().clone();
    p.value().mutable_grad() = torch::zeros_like(p.value());
  }
  const double lr = 0.1, wd = 0.5;
  Optimizer opt(params, OptimizerOptions{0.9, 0.98, 1e-8, wd});
  opt.step(lr);
  int decayed = 0, kept = 0;
  for (auto& [name, p] : params) {
    if (p.dim() >= 2) {
      EXPECT_LT((p - before[name] * (1 - lr * wd)).abs().max().item<double>(), 1e-7) << name;
      ++decayed;
    } else {
      EXPECT_TRUE(torch::equal(p, before[name])) << name << " (1-D) must not be decayed";
      ++kept;
    }
  }
  EXPECT_TRUE(before.count("lm_bias") && before.count("final_norm.weight") && before.count("layers.0.ff1.bias"));
  EXPECT_GE(decayed, 6);  // embeddings, q/k/v/out projections, ff1, ff2, positions
  EXPECT_GE(kept, 10);    // biases, LayerNorm weights and biases, lm_bias
}

TEST(Optimizer, ScheduleAndClipping) {
  EXPECT_DOUBLE_EQ(learning_rate(0, 1.0, 4, 100, parse_schedule("constant")), 0.25);
  EXPECT_DOUBLE_EQ(learning_rate(3, 1.0, 4, 100, parse_schedule("constant")), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(50, 1.0, 4, 100, parse_schedule("constant")), 1.0);
  EXPECT_NEAR(learning_rate(52, 1.0, 4, 100, parse_schedule("linear")), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(52, 1.0, 4, 100, parse_schedule("cosine")), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(100, 1.0, 4, 100, parse_schedule("cosine")), 0.0, 1e-12);
  at::Tensor p = torch::zeros({3}).requires_grad_();
  p.mutable_grad() = torch::tensor({3.0f, 4.0f, 0.0f});
  EXPECT_NEAR(clip_grad_norm({{"p", p}}, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(p.grad().norm().item<double>(), 1.0, 1e-5);
}

// U diag(s) V^T in double with orthonormal U [r, k] and V [c, k] drawn from QR of Gaussian matrices.
static at::Tensor with_singular_values(int64_t r, int64_t c, const std::vector<double>& s, at::Tensor* u, at::Tensor* v) {
  const auto k = static_cast<int64_t>(s.size());
  *u = std::get<0>(at::linalg_qr(torch::randn({r, k}, at::kDouble)));
  *v = std::get<0>(at::linalg_qr(torch::randn({c, k}, at::kDouble)));
  return at::mm(*u * torch::tensor(s, at::kDouble), v->t());
}

// Each singular value's image under newton_schulz5, one scalar at a time in double: s / (||S||_F + 1e-7), then
// five times f(s) = a s + b s^3 + c s^5.
static std::vector<double> quintic_images(const std::vector<double>& s) {
  double frob = 0;
  for (double x : s) frob += x * x;
  std::vector<double> out;
  for (double x : s) {
    double y = x / (std::sqrt(frob) + 1e-7);
    for (int i = 0; i < 5; ++i) y = 3.4445 * y - 4.7750 * y * y * y + 2.0315 * y * y * y * y * y;
    out.push_back(y);
  }
  return out;
}

TEST(Optimizer, NewtonSchulzMapsEachSingularValueByTheQuinticFiveTimes) {
  // Reference: the iteration acts on each singular value alone, s -> f(s) = a s + b s^3 + c s^5 after scaling by
  // ||G||_F, keeping U and V; so newton_schulz5(U S V^T) = U f^5(S / ||S||) V^T, computed here one scalar at a time.
  torch::manual_seed(3);
  const std::vector<double> s = {2.0, 1.0, 0.3, 0.05, 0.01};
  const std::vector<double> f5 = quintic_images(s);
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_GT(f5[i], 0.65) << "singular value " << s[i];  // every one of these (>= 3e-3 ||G||_F) ends near 1
    EXPECT_LT(f5[i], 1.25) << "singular value " << s[i];
  }
  for (auto [r, c] : {std::pair<int64_t, int64_t>{9, 5}, {5, 12}}) {  // tall (transposed inside) and wide
    at::Tensor u, v;
    const at::Tensor g = with_singular_values(r, c, s, &u, &v);
    const at::Tensor expected = at::mm(u * torch::tensor(f5, at::kDouble), v.t());
    const at::Tensor got64 = newton_schulz5(g);
    ASSERT_EQ(got64.sizes(), g.sizes());
    EXPECT_LT((got64 - expected).abs().max().item<double>(), 1e-12) << r << "x" << c;
    // float32: each of the 5 steps rounds to ~eps32 relative and can grow an error by at most f'(0) = a = 3.4445,
    // over sums of at most 12 products: bound eps32 a^5 12.
    const double bound = std::numeric_limits<float>::epsilon() * std::pow(3.4445, 5) * 12;
    const at::Tensor got32 = newton_schulz5(g.to(at::kFloat));
    EXPECT_EQ(got32.scalar_type(), at::kFloat);
    EXPECT_LT((got32.to(at::kDouble) - expected).abs().max().item<double>(), bound) << r << "x" << c;
    // Not a no-op: the input's direction alone is far from the result.
    EXPECT_GT((g / g.norm() - expected).abs().max().item<double>(), 0.1);

    // A batch [3, r, c]: each matrix on its own, the same as one at a time (here g, -g and another one).
    const at::Tensor h = torch::randn({r, c}, at::kDouble);
    const at::Tensor got_batch = newton_schulz5(at::stack({g, -g, h}));
    ASSERT_EQ(got_batch.sizes(), (std::vector<int64_t>{3, r, c}));
    EXPECT_LT((got_batch[0] - expected).abs().max().item<double>(), 1e-12) << r << "x" << c;
    EXPECT_LT((got_batch[1] + expected).abs().max().item<double>(), 1e-12) << r << "x" << c;
    EXPECT_LT((got_batch[2] - newton_schulz5(h)).abs().max().item<double>(), 1e-12) << r << "x" << c;
  }
}

TEST(Optimizer, NewtonSchulzInBf16KeepsTheDirectionsAboveItsRounding) {
  // bf16 iterations (what bf16 runs use): each step's products and result round to bf16, unit roundoff
  // u = 2^-8. A singular value below about u ||G||_F is lost in the first rounding (the iteration then
  // grows whatever the rounding left there toward the band); Muon's update in such directions is noise
  // anyway. Singular values well above it keep their f^5 image: near the band the iteration contracts
  // (|f'(s)| = 0.72 at s = 1, 1.14 at 0.7), so the roundings add up rather than multiply: five steps of three
  // rounded results (A, b A + c A^2, X), each within u of its own norm, are 15 u. Bound: 16 u on the error's
  // Frobenius norm relative to the result's, where float32's worst-case bound of the test above, scaled to
  // u, is a^5 12 u = 5,800 u. Singular values from 0.05 ||G||_F (13 u) up.
  if (!bf16_gemm_accumulates_in_float32(c10::Device(c10::kCPU)))
    GTEST_SKIP() << "this LibTorch's bf16 GEMMs sum in bf16 on this CPU: the trainer keeps Newton-Schulz in float32 here";
  torch::manual_seed(4);
  std::vector<double> wide(64);  // 64 values from 2.0 down to 0.5: the smallest 0.05 ||G||_F
  for (size_t i = 0; i < wide.size(); ++i) wide[i] = 2.0 - 1.5 * static_cast<double>(i) / 63.0;
  const double unit = std::ldexp(1.0, -8);
  for (const auto& [r, c, sv] : {std::tuple<int64_t, int64_t, std::vector<double>>{9, 5, {2.0, 1.0, 0.5, 0.3, 0.2}},
                                 {5, 12, {2.0, 1.0, 0.5, 0.3, 0.2}}, {64, 256, wide}}) {
    at::Tensor u, v;
    const std::vector<double> fv = quintic_images(sv);
    const at::Tensor g = with_singular_values(r, c, sv, &u, &v);
    const at::Tensor expected = at::mm(u * torch::tensor(fv, at::kDouble), v.t());
    const at::Tensor got32 = newton_schulz5(g.to(at::kFloat));
    const at::Tensor got16 = newton_schulz5(g.to(at::kFloat), at::kBFloat16);
    EXPECT_EQ(got16.scalar_type(), at::kFloat);
    const double norm = expected.norm().item<double>();
    const double err32 = (got32.to(at::kDouble) - expected).norm().item<double>() / norm;
    const double err16 = (got16.to(at::kDouble) - expected).norm().item<double>() / norm;
    std::printf("newton_schulz5 %lldx%lld: relative error (Frobenius) float32 %.2e, bf16 %.2e (bound %.2e)\n",
                static_cast<long long>(r), static_cast<long long>(c), err32, err16, 16 * unit);
    EXPECT_LT(err16, 16 * unit) << r << "x" << c;
    EXPECT_GT(err16, err32) << "the bf16 iterations ran in bf16";
  }
}

TEST(Optimizer, MuonUpdatesTheBlocksMatricesByItsFormulaAndTheRestByAdamW) {
  EncoderConfig ec;
  ec.layers = 2;
  ec.heads = 2;
  ec.d_model = 16;
  ec.d_ff = 24;
  ec.features = 8;
  ec.max_len = 16;
  ec.local_kernel = 3;
  ec.local_ffn = true;             // a second convolution beside the feed-forward block: AdamW's
  ec.activation = Activation::kSwiglu;  // a third feed-forward matrix: Muon's
  ec.lm_head = LmHead::kEsm;       // a dense layer outside the blocks: AdamW's
  torch::manual_seed(5);
  Encoder model(ec);
  std::vector<std::pair<std::string, at::Tensor>> pm, pa;
  std::map<std::string, at::Tensor> start;
  for (auto& p : model->named_parameters()) {
    start[p.key()] = p.value().detach().clone();
    pm.emplace_back(p.key(), p.value().detach().clone().requires_grad_());
    pa.emplace_back(p.key(), p.value().detach().clone().requires_grad_());
  }
  const double lr = 0.01, wd = 0.1, mu = 0.9;
  Optimizer muon(pm, OptimizerOptions{0.9, 0.98, 1e-8, wd, OptimizerKind::kMuon, mu});
  Optimizer adamw(pa, OptimizerOptions{0.9, 0.98, 1e-8, wd});
  EXPECT_EQ(muon.muon_parameters(), 2 * 7);  // q, k, v, out, ff1, ff2, ff_gate in each of 2 layers
  EXPECT_EQ(adamw.muon_parameters(), 0);
  std::map<std::string, std::vector<at::Tensor>> grads;
  for (int step = 0; step < 2; ++step) {
    for (size_t i = 0; i < pm.size(); ++i) {
      at::Tensor g = torch::randn_like(pm[i].second);
      grads[pm[i].first].push_back(g);
      pm[i].second.mutable_grad() = g.clone();
      pa[i].second.mutable_grad() = g.clone();
    }
    muon.step(lr);
    adamw.step(lr);
  }
  std::set<std::string> by_muon;
  for (size_t i = 0; i < pm.size(); ++i) {
    const std::string& name = pm[i].first;
    if (!muon_parameter(name, pm[i].second)) {
      EXPECT_TRUE(torch::equal(pm[i].second, pa[i].second)) << name << " must be updated by AdamW alone";
      continue;
    }
    by_muon.insert(name);
    // The formula in double: m1 = g1, p1 = p0 (1 - lr wd) - lr k NS(g1 + mu m1); m2 = mu m1 + g2, likewise.
    const auto& g = grads[name];
    const at::Tensor p = pm[i].second;
    const double k = 0.2 * std::sqrt(static_cast<double>(std::max(p.size(0), p.size(1))));
    at::Tensor m = g[0].to(at::kDouble);
    at::Tensor ref = start[name].to(at::kDouble) * (1 - lr * wd) - lr * k * newton_schulz5(g[0].to(at::kDouble) + mu * m);
    m = mu * m + g[1].to(at::kDouble);
    ref = ref * (1 - lr * wd) - lr * k * newton_schulz5(g[1].to(at::kDouble) + mu * m);
    // float32 against double: the bound of the test above on each update, times lr k, plus rounding of p.
    const double bound = 2 * lr * k * std::numeric_limits<float>::epsilon() * std::pow(3.4445, 5) * 24 + 1e-6;
    EXPECT_LT((p.to(at::kDouble) - ref).abs().max().item<double>(), bound) << name;
    EXPECT_GT((p - pa[i].second).abs().max().item<double>(), 1e-3) << name << ": Muon must differ from AdamW";
    EXPECT_LT((muon.exp_avg().at(name).to(at::kDouble) - m).abs().max().item<double>(), 1e-5)
        << name << ": the momentum is stored as exp_avg";
    EXPECT_EQ(muon.exp_avg_sq().at(name).abs().max().item<double>(), 0.0) << name;
  }
  EXPECT_TRUE(by_muon.count("layers.1.attn.q_proj.weight") && by_muon.count("layers.0.ff2.weight") &&
              by_muon.count("layers.1.ff_gate.weight"));
  ASSERT_TRUE(start.count("layers.0.local_ff_weight") && start.count("lm_head.dense.weight"));
  EXPECT_FALSE(by_muon.count("layers.0.local_weight") || by_muon.count("layers.0.local_ff_weight") ||
               by_muon.count("embed.weight") || by_muon.count("lm_head.dense.weight"));
  EXPECT_EQ(parse_optimizer("muon"), OptimizerKind::kMuon);
  EXPECT_EQ(optimizer_name(OptimizerKind::kAdamW), "adamw");
  EXPECT_THROW(parse_optimizer("sgd"), Error);
}

TEST(Checkpoint, RoundTripRestoresEveryTensor) {
  TempDir dir;
  RunConfig c = tiny_run_config(dir.path());
  Encoder model(c.model);
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& p : model->named_parameters()) params.emplace_back(p.key(), p.value());
  Optimizer opt(params, OptimizerOptions{});
  for (auto& [n, p] : params) p.mutable_grad() = torch::randn_like(p);
  opt.step(1e-3);
  model->update_features(12);  // a non-initial feature draw
  TrainState st;
  st.step = 7;
  st.tokens_seen = 1234;
  st.data = DataPosition{2, 5};
  st.best_valid_loss = 2.5;
  st.config_yaml = config_to_yaml(c);
  const std::string path = dir.file("c.h5");
  save_checkpoint(path, model, &opt, st);

  RunConfig c2 = c;
  c2.runtime.seed = 99;  // different initialization, same shapes
  c2.model.seed = 99;
  Encoder other(c2.model);
  std::vector<std::pair<std::string, at::Tensor>> params2;
  for (auto& p : other->named_parameters()) params2.emplace_back(p.key(), p.value());
  Optimizer opt2(params2, OptimizerOptions{});
  TrainState back = load_checkpoint(path, other, &opt2, false);
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.tokens_seen, 1234);
  EXPECT_EQ(back.data, (DataPosition{2, 5}));
  EXPECT_EQ(back.best_valid_loss, 2.5);
  EXPECT_EQ(back.config_yaml, st.config_yaml);
  auto a = model->named_parameters(), b = other->named_parameters();
  for (auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  auto ab = model->named_buffers(), bb = other->named_buffers();
  for (auto& p : ab) EXPECT_TRUE(torch::equal(p.value(), bb[p.key()])) << p.key();
  for (auto& [n, t] : opt.exp_avg()) EXPECT_TRUE(torch::equal(t, opt2.exp_avg()[n])) << n;
  for (auto& [n, t] : opt.exp_avg_sq()) EXPECT_TRUE(torch::equal(t, opt2.exp_avg_sq()[n])) << n;
  EXPECT_EQ(opt2.step_count(), 1);
  EXPECT_EQ(newest_valid_checkpoint(dir.path()), "");  // not named ckpt-*.h5
}

TEST(Checkpoint, CorruptTruncatedOrMismatchedGiveClearErrors) {
  TempDir dir;
  RunConfig c = tiny_run_config(dir.path());
  Encoder model(c.model);
  TrainState st;
  const std::string good = checkpoint_path(dir.path(), 5);
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& p : model->named_parameters()) params.emplace_back(p.key(), p.value());
  Optimizer opt(params, OptimizerOptions{});
  save_checkpoint(good, model, &opt, st);
  // Truncated copy with a newer step: skipped by --resume auto, rejected when named.
  const std::string bad = checkpoint_path(dir.path(), 9);
  fs::copy_file(good, bad);
  fs::resize_file(bad, fs::file_size(bad) / 3);
  EXPECT_EQ(newest_valid_checkpoint(dir.path()), good);
  EXPECT_THROW(load_checkpoint(bad, model, &opt, false), Error);
  write_file(dir.file("junk.h5"), "not a checkpoint");
  try {
    load_checkpoint(dir.file("junk.h5"), model, &opt, false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.h5"), std::string::npos);
  }
  EXPECT_THROW(load_checkpoint(dir.file("missing.h5"), model, &opt, false), Error);
  // A model of another shape.
  RunConfig wide = tiny_run_config(dir.path(), {"model.d_ff=96"});
  Encoder other(wide.model);
  try {
    load_checkpoint(good, other, nullptr, false);
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("ff1.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("shape"), std::string::npos) << msg;
  }
}

TEST(Train, TinyRunLossDecreases) {
  TempDir dir;
  RunConfig c = tiny_run_config(dir.path(), {"train.steps=40", "eval.every=0", "model.dropout=0"});
  TrainOptions o;
  o.progress_bar = false;
  TrainResult r = train(c, o);
  EXPECT_EQ(r.step, 40);
  EXPECT_EQ(stop_reason_name(r.stop_reason), "completed");
  auto loss = csv_column(dir.file("metrics.csv"), 2);
  ASSERT_EQ(loss.size(), 40u);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += loss[static_cast<size_t>(i)] / 5, last += loss[loss.size() - 1 - static_cast<size_t>(i)] / 5;
  EXPECT_LT(last, first - 0.2) << "first " << first << " last " << last;
  EXPECT_TRUE(fs::exists(dir.file("config.yaml")));
  EXPECT_TRUE(fs::exists(dir.file("train.log")));
  EXPECT_TRUE(fs::exists(dir.file("best.h5")));
  EXPECT_FALSE(newest_valid_checkpoint(dir.path()).empty());
  EXPECT_TRUE(std::isfinite(r.valid_perplexity));
  // The saved config reproduces the run's config.
  EXPECT_EQ(config_to_yaml(load_config(dir.file("config.yaml"))), config_to_yaml(c));
}

TEST(Evaluate, ScoresTheFirstProteinsOfTheSplitInCorpusOrder) {
  // A valid split larger than max_sequences: the evaluation scores its first max_sequences proteins in
  // corpus order, whatever their lengths, not the shortest ones of a longer stretch.
  std::vector<std::string> seqs;
  for (const auto& r : read_all(data_path("real_excerpt.fasta"))) seqs.push_back(r.residues);
  const Corpus corpus = Corpus::from_sequences(seqs, std::vector<Split>(seqs.size(), Split::kValid));
  EvalSettings st;
  st.max_len = 256;
  st.tokens_per_batch = 2048;
  st.max_sequences = static_cast<int64_t>(seqs.size()) / 3;
  const std::vector<size_t> all = corpus.indices(Split::kValid);
  const std::set<size_t> first(all.begin(), all.begin() + st.max_sequences);
  // The shortest proteins of the split are not all among the first ones, so the test can tell them apart.
  std::vector<size_t> by_length = all;
  std::stable_sort(by_length.begin(), by_length.end(), [&](size_t a, size_t b) { return corpus.length(a) < corpus.length(b); });
  ASSERT_NE(std::set<size_t>(by_length.begin(), by_length.begin() + st.max_sequences), first);

  auto batches = evaluation_batches(corpus, Split::kValid, st);
  std::set<size_t> scored;
  for (int64_t i = 0, rows = 0; i < batches->num_batches(0) && rows < st.max_sequences; ++i) {
    const Batch b = batches->batch(0, i);
    rows += b.tokens.size(0);
    for (int64_t id : b.sequence_ids) scored.insert(static_cast<size_t>(id));
  }
  EXPECT_EQ(scored, first);
  EncoderConfig mc;
  mc.layers = 1;
  mc.d_model = 32;
  mc.heads = 2;
  mc.d_ff = 64;
  mc.max_len = 256;
  Encoder model(mc);
  EXPECT_EQ(evaluate(model, corpus, Split::kValid, st, torch::kCPU).sequences, st.max_sequences);
  // A max_sequences beyond any split ("all of it") scores the whole split.
  st.max_sequences = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(evaluate(model, corpus, Split::kValid, st, torch::kCPU).sequences, static_cast<int64_t>(seqs.size()));
}

TEST(Train, Bf16OnCpuTrainsLikeFloat32AndResumesExactly) {
  // runtime.precision bf16 on CPU (autocast): the tiny run's loss falls as in float32 and ends within 5% of
  // it; the log names the precision and the probe's figures; a run stopped half-way and resumed ends
  // bit-identical to the uninterrupted bf16 run.
  const std::vector<std::string> sets = {"train.steps=30", "eval.every=0", "model.dropout=0", "output.checkpoint_every=0"};
  auto with = [&](const std::string& p) {
    std::vector<std::string> s = sets;
    s.push_back("runtime.precision=" + p);
    return s;
  };
  TempDir f32, b16, half;
  TrainOptions o;
  o.progress_bar = false;
  train(tiny_run_config(f32.path(), with("fp32")), o);
  const TrainResult rb = train(tiny_run_config(b16.path(), with("bf16")), o);
  EXPECT_EQ(rb.step, 30);
  auto loss = csv_column(b16.file("metrics.csv"), 2);
  ASSERT_EQ(loss.size(), 30u);
  EXPECT_LT(loss.back(), loss.front() - 0.2);
  const auto loss32 = csv_column(f32.file("metrics.csv"), 2);
  ASSERT_EQ(loss32.size(), 30u);
  double end16 = 0, end32 = 0;  // the last 5 steps' mean loss
  for (size_t i = 25; i < 30; ++i) end16 += loss[i] / 5, end32 += loss32[i] / 5;
  EXPECT_LT(std::abs(end16 - end32), 0.05 * end32) << end16 << " vs " << end32;
  EXPECT_NE(loss, loss32) << "bf16 changed nothing: autocast was not on";
  const std::string log = read_text(b16.file("train.log"));
  // The probe's verdict depends on the machine's load (under ctest -j2 it has measured bf16 slower): either
  // line names bf16 and carries the block's figures; where bf16 GEMMs sum in bf16, the warning says so.
  const bool faster = log.find("precision bf16: feed-forward block") != std::string::npos;
  const bool warned = log.find("bf16 was asked for but ") != std::string::npos &&
                      log.find("here: feed-forward block") != std::string::npos;
  EXPECT_TRUE(faster || warned) << log;
  if (!bf16_gemm_accumulates_in_float32(torch::kCPU)) {
    EXPECT_TRUE(warned) << log;
    EXPECT_NE(log.find("bf16 GEMMs sum in bf16, not float32"), std::string::npos) << log;
  }
  TrainOptions stop = o;
  stop.stop_after = 15;
  train(tiny_run_config(half.path(), with("bf16")), stop);
  TrainOptions resume = o;
  resume.resume = "auto";
  train(tiny_run_config(half.path(), with("bf16")), resume);
  EXPECT_EQ(csv_column(half.file("metrics.csv"), 2), loss);
}

// A run stopped at step 8 of 16 and resumed ends bit for bit where the uninterrupted run ends.
static void expect_exact_resume(std::vector<std::string> sets) {
  for (std::string extra : {"train.steps=16", "train.tokens_per_step=1500", "eval.every=0", "output.checkpoint_every=0"})
    sets.push_back(extra);
  TempDir a, b;
  TrainOptions o;
  o.progress_bar = false;
  train(tiny_run_config(a.path(), sets), o);
  TrainOptions half = o;
  half.stop_after = 8;
  TrainResult first = train(tiny_run_config(b.path(), sets), half);
  EXPECT_EQ(stop_reason_name(first.stop_reason), "stop_after");
  EXPECT_EQ(first.step, 8);
  TrainOptions resume = o;
  resume.resume = "auto";
  TrainResult second = train(tiny_run_config(b.path(), sets), resume);
  EXPECT_EQ(second.step, 16);
  // Same loss curve, step by step, and the same final parameters, bit for bit.
  EXPECT_EQ(csv_column(a.file("metrics.csv"), 2), csv_column(b.file("metrics.csv"), 2));
  RunConfig c = tiny_run_config(a.path(), sets);
  Encoder ma(c.model), mb(c.model);
  load_checkpoint(checkpoint_path(a.path(), 16), ma, nullptr, false);
  load_checkpoint(checkpoint_path(b.path(), 16), mb, nullptr, false);
  auto pa = ma->named_parameters(), pb = mb->named_parameters();
  for (auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  auto ba = ma->named_buffers(), bb = mb->named_buffers();
  for (auto& p : ba) EXPECT_TRUE(torch::equal(p.value(), bb[p.key()])) << p.key();
}

TEST(Train, ExactResumeIsBitIdentical) {
  // Dropout, feature redraws, gradient accumulation and prefetching all on.
  expect_exact_resume({"model.dropout=0.1", "model.redraw_interval=3"});
}

TEST(Train, MuonLowersTheLossAndResumesExactly) {
  TempDir dir;
  TrainOptions o;
  o.progress_bar = false;
  train(tiny_run_config(dir.path(), {"train.steps=40", "eval.every=0", "train.optimizer=muon"}), o);
  auto loss = csv_column(dir.file("metrics.csv"), 2);
  ASSERT_EQ(loss.size(), 40u);
  double first = 0, last = 0;
  for (size_t i = 0; i < 5; ++i) first += loss[i] / 5, last += loss[loss.size() - 1 - i] / 5;
  EXPECT_LT(last, first - 0.2) << "first " << first << " last " << last;
  expect_exact_resume({"train.optimizer=muon", "model.local_kernel=3"});
  EXPECT_NE(read_text(dir.file("train.log")).find("Newton-Schulz in float32"), std::string::npos);
  if (bf16_gemm_accumulates_in_float32(c10::Device(c10::kCPU))) {
    // A bf16 run iterates Newton-Schulz in bf16 (its log says so), and resumes exactly too.
    TempDir b;
    train(tiny_run_config(b.path(), {"train.steps=2", "eval.every=0", "train.optimizer=muon", "runtime.precision=bf16"}), o);
    EXPECT_NE(read_text(b.file("train.log")).find("Newton-Schulz in bf16"), std::string::npos) << read_text(b.file("train.log"));
    expect_exact_resume({"train.optimizer=muon", "runtime.precision=bf16"});
  }
}

TEST(Train, AResumeUnderTheOtherOptimizerIsRefusedAndWritesNothing) {
  // AdamW's moments and Muon's momentum mean different things: a run continues with the optimizer that wrote it.
  for (auto [first, second] : {std::pair<std::string, std::string>{"adamw", "muon"}, {"muon", "adamw"}}) {
    TempDir dir;
    TrainOptions o;
    o.progress_bar = false;
    const std::vector<std::string> sets = {"train.steps=6", "eval.every=0", "output.checkpoint_every=3"};
    auto with = [&](const std::string& kind) {
      auto v = sets;
      v.push_back("train.optimizer=" + kind);
      return tiny_run_config(dir.path(), v);
    };
    TrainOptions half = o;
    half.stop_after = 3;
    train(with(first), half);
    const std::string metrics = read_text(dir.file("metrics.csv"));
    std::set<std::string> files;
    for (auto& e : fs::directory_iterator(dir.path())) files.insert(e.path().filename().string());
    TrainOptions resume = o;
    resume.resume = "auto";
    try {
      train(with(second), resume);
      ADD_FAILURE() << first << " -> " << second << ": resumed";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("train.optimizer " + first), std::string::npos) << msg;
      EXPECT_NE(msg.find("--set train.optimizer=" + first), std::string::npos) << msg;
      EXPECT_NE(msg.find("ckpt-"), std::string::npos) << msg;  // names the checkpoint
    }
    std::set<std::string> after;
    for (auto& e : fs::directory_iterator(dir.path())) after.insert(e.path().filename().string());
    EXPECT_EQ(after, files) << first << " -> " << second;
    EXPECT_EQ(read_text(dir.file("metrics.csv")), metrics);
    // With the same optimizer it continues.
    EXPECT_EQ(train(with(first), resume).step, 6);
  }
}

TEST(Train, NonFiniteStepsAreSkippedThenStop) {
  // Resume from a diverged checkpoint: a LayerNorm gain of 3e38 (finite, so the checkpoint loads) makes the
  // logits overflow, so every step is non-finite, skipped and counted, and after train.max_bad_steps in a
  // row training stops with a checkpoint and a clear message. (A checkpoint holding NaN itself is refused at
  // load: see test_reliability.)
  TempDir dir;
  RunConfig c = tiny_run_config(dir.path(), {"train.max_bad_steps=3", "train.steps=50", "eval.every=0"});
  {
    Encoder model(c.model);
    std::vector<std::pair<std::string, at::Tensor>> params;
    for (auto& p : model->named_parameters()) params.emplace_back(p.key(), p.value());
    Optimizer opt(params, OptimizerOptions{});
    torch::NoGradGuard g;
    model->final_norm->weight.fill_(3e38);
    TrainState st;
    save_checkpoint(checkpoint_path(dir.path(), 0), model, &opt, st);
  }
  TrainOptions o;
  o.progress_bar = false;
  o.resume = "auto";
  TrainResult r = train(c, o);
  EXPECT_EQ(stop_reason_name(r.stop_reason), "non-finite");
  EXPECT_EQ(r.step, 3);
  auto skipped = csv_column(dir.file("metrics.csv"), 7);
  EXPECT_EQ(skipped, (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(newest_valid_checkpoint(dir.path()), checkpoint_path(dir.path(), 3));
  EXPECT_FALSE(std::isfinite(r.valid_perplexity)) << "no finite evaluation: none is reported";
}

TEST(Train, SigintWritesACheckpointAndSaysHowToResume) {
  TempDir dir;
  const std::string out = dir.file("run");
  const std::string log = dir.file("stderr.txt");
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!std::freopen(log.c_str(), "w", stderr) || !std::freopen(dir.file("stdout.txt").c_str(), "w", stdout))
      ::_exit(127);
    ::execl(PERFORMER_BINARY, PERFORMER_BINARY, "train", "--config", (project_root() + "/configs/tiny.yaml").c_str(), "--set",
            ("output.dir=" + out).c_str(), "--set", ("data.train=" + data_path("real_excerpt.fasta")).c_str(), "--set",
            "train.steps=100000", "--set", "eval.every=0", "--set", "output.checkpoint_every=0", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until training has taken a few steps.
  for (int i = 0; i < 600; ++i) {
    if (csv_column(out + "/metrics.csv", 0).size() >= 3) break;
    ::usleep(100000);
  }
  ASSERT_GE(csv_column(out + "/metrics.csv", 0).size(), 3u) << "training did not start";
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  std::ifstream in(log);
  std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(err.find("--resume auto"), std::string::npos) << err;
  std::string ckpt = newest_valid_checkpoint(out);
  ASSERT_FALSE(ckpt.empty());
  RunConfig c = load_config(out + "/config.yaml");
  Encoder model(c.model);
  TrainState st = load_checkpoint(ckpt, model, nullptr, false);
  EXPECT_GE(st.step, 3);
}

// train/flops.h against the model's own parameters: per token, 6 FLOPs (2 forward, 4 backward) per
// parameter of every weight matrix that multiplies activations (projections, feed-forward, the embedding
// as the tied LM head; not the position table, which is added), plus the attention core: 3 x 2 x 2 L D
// per layer for exact attention (q k^T, p v) and 3 x 2 x 4 m D for FAVOR, whatever the length; other
// FAVOR variants as in flops.h.
TEST(Flops, MatmulParametersOfTheModelPlusTheAttentionCore) {
  EncoderConfig c;
  c.layers = 3;
  c.heads = 4;
  c.d_model = 64;
  c.d_ff = 96;
  c.features = 48;
  c.max_len = 256;
  double matmul = 0;
  for (auto& p : Encoder(c)->named_parameters())
    if (p.value().dim() == 2 && p.key() != "positions.weight") matmul += static_cast<double>(p.value().numel());
  const double D = 64, N = 3, m = 48;
  for (int64_t L : {128, 256}) {
    c.kind = AttentionKind::kExact;
    EXPECT_DOUBLE_EQ(training_flops_per_token(c, L), 6 * matmul + N * 12 * static_cast<double>(L) * D) << L;
    for (auto kind : {AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu}) {
      c.kind = kind;
      EXPECT_DOUBLE_EQ(training_flops_per_token(c, L), 6 * matmul + N * 24 * m * D) << L;
    }
  }
  // favor-relu without projection: features of size d_head = 16, no feature matmuls.
  c.kind = AttentionKind::kFavorRelu;
  c.relu_projection = false;
  EXPECT_DOUBLE_EQ(training_flops_per_token(c, 128), 6 * matmul + N * 12 * 16 * D);
  // Causal FAVOR adds the masked chunk x chunk products: 3 x 2 c H (m' + d_head) per layer.
  c.causal = true;
  c.causal_chunk = 32;
  EXPECT_DOUBLE_EQ(training_flops_per_token(c, 128), 6 * matmul + N * (12 * 16 * D + 6 * 32 * 4 * (16 + 16)));
}
