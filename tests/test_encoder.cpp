#include <gtest/gtest.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <set>

#include "data/batches.h"
#include "data/masking.h"
#include "model/encoder.h"
#include "util/precision.h"
#include "test_util.h"

using namespace performer;
using namespace performer::testing;

namespace {

EncoderConfig small_config(AttentionKind kind) {
  EncoderConfig c;
  c.kind = kind;
  c.layers = 2;
  c.heads = 4;
  c.d_model = 64;
  c.d_ff = 128;
  c.features = 64;
  c.dropout = 0.0;
  c.max_len = 128;
  c.redraw_interval = 0;
  c.seed = 3;
  return c;
}

// A masked batch of real proteins from the committed excerpt.
Batch real_batch(int64_t rows, int64_t max_len, uint64_t mask_seed) {
  static Corpus corpus = [] {
    auto recs = read_all(data_path("real_excerpt.fasta"));
    std::vector<std::string> seqs;
    for (auto& r : recs) seqs.push_back(r.residues);
    return Corpus::from_sequences(seqs, std::vector<Split>(seqs.size(), Split::kTrain));
  }();
  BatchOptions o;
  o.max_len = max_len;
  o.tokens_per_batch = rows * max_len;
  o.shuffle = false;
  o.bucket_window = rows;
  SequenceBatches batches(corpus, Split::kTrain, o);
  Batch b = batches.batch(0, 0);
  MaskedTokens m = mask_tokens(b.tokens, MaskingOptions{}, mask_seed);
  b.inputs = m.inputs;
  b.labels = m.labels;
  return b;
}

at::Tensor mlm_loss(Encoder& model, const Batch& b) {
  at::Tensor logits = model(b.inputs, b.padding_mask);
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), b.labels.reshape({-1}),
                                              torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex));
}

}  // namespace

TEST(Encoder, ParameterNamesAreStable) {
  Encoder model(small_config(AttentionKind::kFavorSoftmax));
  std::set<std::string> names;
  for (auto& p : model->named_parameters()) names.insert(p.key());
  for (const char* want : {"embed.weight", "positions.weight", "layers.0.norm1.weight", "layers.1.attn.q_proj.weight",
                           "layers.1.attn.out_proj.bias", "layers.1.ff1.weight", "layers.1.ff2.bias",
                           "final_norm.weight", "lm_bias"})
    EXPECT_TRUE(names.count(want)) << want;
  std::set<std::string> buffers;
  for (auto& b : model->named_buffers()) buffers.insert(b.key());
  EXPECT_TRUE(buffers.count("layers.0.attn.projection"));
  EXPECT_TRUE(buffers.count("layers.1.attn.feature_draw"));
}

TEST(Encoder, PaperProteinModelIsExpressible) {
  EncoderConfig c;  // 36 layers, 8 heads, d 512, d_ff 1024, m 256, L 1024
  c.layers = 36;
  c.heads = 8;
  c.d_model = 512;
  c.d_ff = 1024;
  c.features = 256;
  c.max_len = 1024;
  c.kind = AttentionKind::kFavorRelu;
  Encoder model(c);
  // Per layer: 4 d^2 + 4 d (attention) + 2 d d_ff + d_ff + d (FF) + 4 d (norms).
  const int64_t d = 512, f = 1024;
  const int64_t per_layer = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d;
  const int64_t expected = 36 * per_layer + 33 * d + 1024 * d + 2 * d + 33;
  EXPECT_EQ(model->num_parameters(), expected);
}

TEST(Encoder, ForwardBackwardOnRealProteins) {
  for (auto kind : {AttentionKind::kExact, AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu}) {
    Encoder model(small_config(kind));
    Batch b = real_batch(4, 128, 1);
    at::Tensor loss = mlm_loss(model, b);
    // At initialization the loss is near log(33) (uniform over the vocabulary).
    EXPECT_NEAR(loss.item<double>(), std::log(33.0), 1.0) << attention_kind_name(kind);
    loss.backward();
    for (auto& p : model->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    }
    EXPECT_GT(model->layers[0]->as<EncoderLayer>()->attn->q_proj->weight.grad().abs().sum().item<double>(), 0);
  }
}

TEST(Encoder, TwoLayerModelOverfitsOneBatch) {
  for (auto kind : {AttentionKind::kExact, AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu}) {
    Encoder model(small_config(kind));
    Batch b = real_batch(4, 64, 2);
    torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(3e-3));
    double loss = 0;
    int step = 0;
    for (; step < 600; ++step) {
      opt.zero_grad();
      at::Tensor l = mlm_loss(model, b);
      l.backward();
      opt.step();
      loss = l.item<double>();
      if (loss < 0.05) break;
    }
    std::printf("  %s: loss %.4f after %d steps\n", attention_kind_name(kind).c_str(), loss, step + 1);
    EXPECT_LT(loss, 0.1) << attention_kind_name(kind);
  }
}

TEST(Encoder, FeaturesRedrawOnScheduleOnly) {
  EncoderConfig c = small_config(AttentionKind::kFavorSoftmax);
  c.redraw_interval = 10;
  Encoder model(c);
  auto attn = model->layers[1]->as<EncoderLayer>()->attn;
  at::Tensor w0 = attn->projection().clone();
  model->update_features(9);
  EXPECT_TRUE(torch::equal(attn->projection(), w0));
  model->update_features(10);
  EXPECT_EQ(attn->current_draw(), 1);
  EXPECT_FALSE(torch::equal(attn->projection(), w0));
  // A fresh model brought to the same step has the same matrices (resume).
  Encoder resumed(c);
  resumed->update_features(15);
  EXPECT_TRUE(torch::equal(resumed->layers[1]->as<EncoderLayer>()->attn->projection(), attn->projection()));
}

TEST(Encoder, CausalRotaryVariantTrains) {
  EncoderConfig c = small_config(AttentionKind::kFavorRelu);
  c.causal = true;
  c.positions = PositionKind::kRotary;
  Encoder model(c);
  Batch b = real_batch(2, 64, 3);
  // Next-token objective: position i predicts token i+1 and cannot see it.
  at::Tensor inputs = b.tokens.narrow(1, 0, 63), targets = b.tokens.narrow(1, 1, 63).clone();
  targets.masked_fill_(~b.padding_mask.narrow(1, 1, 63), kIgnoreIndex);
  at::Tensor logits = model(inputs, b.padding_mask.narrow(1, 0, 63));
  // Changing a later token leaves earlier logits unchanged.
  at::Tensor changed = inputs.clone();
  changed.narrow(1, 40, 23).fill_(Alphabet::kMask);
  at::Tensor logits2 = model(changed, b.padding_mask.narrow(1, 0, 63));
  EXPECT_LT((logits.narrow(1, 0, 40) - logits2.narrow(1, 0, 40)).abs().max().item<double>(), 1e-5);
  EXPECT_GT((logits.narrow(1, 40, 23) - logits2.narrow(1, 40, 23)).abs().max().item<double>(), 1e-3);
}

TEST(Encoder, CausalModelsNeverSeeTheFuture) {
  // Through the whole encoder (embeddings, every layer, the LM head), for all three kinds and both kinds
  // of positions: changing any token after position i changes no logit at positions <= i. In double
  // precision, so "no change" is checked to 1e-10; the causal chunk (5) splits the 37 positions unevenly.
  const int64_t L = 37;
  Batch b = real_batch(2, L, 1);
  for (auto kind : {AttentionKind::kExact, AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu})
    for (const char* positions : {"learned", "rotary"}) {
      EncoderConfig c = small_config(kind);
      c.causal = true;
      c.positions = parse_position_kind(positions);
      c.causal_chunk = 5;
      Encoder model(c);
      model->to(torch::kDouble);
      model->eval();
      torch::NoGradGuard g;
      at::Tensor logits = model(b.tokens, b.padding_mask);
      for (int64_t i : {int64_t{0}, int64_t{7}, int64_t{21}, L - 2}) {
        at::Tensor changed = b.tokens.clone();
        // Every later token replaced (a different residue each), padding mask unchanged.
        changed.narrow(1, i + 1, L - i - 1).copy_((changed.narrow(1, i + 1, L - i - 1) - Alphabet::kFirstResidue + 7) % 20 +
                                                  Alphabet::kFirstResidue);
        at::Tensor logits2 = model(changed, b.padding_mask);
        EXPECT_LT((logits.narrow(1, 0, i + 1) - logits2.narrow(1, 0, i + 1)).abs().max().item<double>(), 1e-10)
            << attention_kind_name(kind) << " " << positions << " i=" << i;
        EXPECT_GT((logits.narrow(1, i + 1, L - i - 1) - logits2.narrow(1, i + 1, L - i - 1)).abs().max().item<double>(), 1e-4)
            << "later positions must see the change";
      }
    }
}

namespace {
// Relative error of the encoder's logits under bf16 autocast on `device` against float32, both FAVOR kinds.
// Projections and feed-forward layers run in bf16 under autocast; the FAVOR core stays float32.
std::vector<double> autocast_logit_errors(const torch::Device& device) {
  std::vector<double> out;
  Batch b = real_batch(4, 128, 5);
  for (auto kind : {AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu}) {
    Encoder model(small_config(kind));
    model->to(device);
    model->eval();
    torch::NoGradGuard g;
    at::Tensor inputs = b.inputs.to(device), mask = b.padding_mask.to(device);
    at::Tensor ref = model(inputs, mask).to(torch::kDouble).cpu();
#if !(TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4))
    if (device.is_cuda()) return {};  // bf16 autocast on CUDA needs LibTorch >= 2.4
#endif
    at::Tensor mixed;
    {
      const AutocastScope autocast(device, Precision::kBf16);
      mixed = model(inputs, mask).to(torch::kDouble).cpu();
    }
    at::Tensor real = b.padding_mask.unsqueeze(-1).expand_as(ref);
    out.push_back((mixed - ref).masked_select(real).norm().item<double>() / ref.masked_select(real).norm().item<double>());
  }
  return out;
}
}  // namespace

TEST(Encoder, LogitsUnderCpuBf16AutocastMatchFloat32) {
  for (double e : autocast_logit_errors(torch::kCPU)) {
    std::printf("  relative logit error under CPU bf16 autocast: %.4f\n", e);
    EXPECT_LT(e, 1e-2);
  }
}

TEST(Encoder, LogitsUnderCudaBf16AutocastMatchFloat32) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto errors = autocast_logit_errors(torch::kCUDA);
  if (errors.empty()) GTEST_SKIP() << "bf16 autocast needs LibTorch >= 2.4";
  for (double e : errors) EXPECT_LT(e, 1e-2);
}

TEST(Encoder, FavorBf16ProductsOnRealProteinsStayWithinBf16RoundingOfFloat64) {
  // Under bf16 autocast the lean FAVOR core multiplies phi(K)^T [V, 1] and phi(Q) KV (and the backward's
  // four products) on bf16 operands with float32 accumulation, its features staying float32. On q, k, v of
  // a real batch of proteins (layer 1 of a model, both kernels), output and gradients against float64 must
  // stay within kBound times the error of merely rounding the float64 result to bf16 (what the bf16
  // out_proj does to the output in any case), measured here on the same tensors, times the tensor's own
  // conditioning: how much more float32 rounding costs it than the output (dq sums terms that cancel, its
  // float32 error is ~5x the output's; bf16 operands are amplified alike).
  constexpr double kBound = 4.0;
  Batch b = real_batch(4, 128, 5);
  for (auto kind : {AttentionKind::kFavorSoftmax, AttentionKind::kFavorRelu}) {
    EncoderConfig config = small_config(kind);
    config.d_model = 128;  // 2 heads of kFavorBf16ProductsMinDim = 64: the bf16 products run
    config.heads = 2;
    Encoder model(config);
    model->eval();
    at::Tensor q, k, v;
    auto& layer = *model->layers[1]->as<EncoderLayer>();
    {
      torch::NoGradGuard g;
      EncoderImpl::LayerStates st{{1}, {}};
      model->hidden(b.inputs, b.padding_mask, nullptr, &st);
      layer.attn->project(layer.norm1(st.states[0]), q, k, v);
    }
    torch::manual_seed(11);
    const at::Tensor G = torch::randn(q.sizes(), torch::kDouble);
    // Output and the gradients of sum(out * G) with respect to q, k, v.
    auto run = [&](at::ScalarType dtype, bool bf16) {
      at::Tensor q1 = q.to(dtype).requires_grad_(), k1 = k.to(dtype).requires_grad_(), v1 = v.to(dtype).requires_grad_();
      at::Tensor out;
      {
        const AutocastScope autocast(torch::kCPU, bf16 ? Precision::kBf16 : Precision::kFp32);
        out = layer.attn->favor(q1, k1, v1, b.padding_mask);
      }
      auto grads = torch::autograd::grad({(out.to(torch::kDouble) * G).sum()}, {q1, k1, v1});
      return std::vector<at::Tensor>{out.detach().to(torch::kDouble), grads[0].to(torch::kDouble),
                                     grads[1].to(torch::kDouble), grads[2].to(torch::kDouble)};
    };
    const auto ref = run(torch::kDouble, false), f32 = run(torch::kFloat, false), mixed = run(torch::kFloat, true);
    const char* names[] = {"out", "dq", "dk", "dv"};
    auto rel = [&](const at::Tensor& x, size_t i) { return (x - ref[i]).norm().item<double>() / ref[i].norm().item<double>(); };
    const double e32_out = rel(f32[0], 0);
    for (size_t i = 0; i < 4; ++i) {
      const double rounding = rel(ref[i].to(torch::kBFloat16).to(torch::kDouble), i);
      const double e32 = rel(f32[i], i), e16 = rel(mixed[i], i);
      const double conditioning = std::max(1.0, e32 / e32_out);
      std::printf("  %s %s: relative error vs float64: float32 %.2e, bf16 products %.2e; bf16 rounding %.2e, "
                  "conditioning %.1f\n", attention_kind_name(kind).c_str(), names[i], e32, e16, rounding, conditioning);
      EXPECT_LT(e16, kBound * rounding * conditioning) << attention_kind_name(kind) << " " << names[i];
      EXPECT_LT(e32, rounding / 50) << attention_kind_name(kind) << " " << names[i];  // float32: far below bf16
    }
  }
}
