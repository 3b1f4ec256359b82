// The encoder block's feed-forward branch: model.activation (gelu, relu2, swiglu) and model.local_ffn
// (a depthwise convolution beside it), each against its formula written out in double from the layer's own
// weights; parameter names and counts; the rules between fields; FLOPs; the export refusal.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "interop/hf_esm.h"
#include "model/encoder.h"
#include "model/local_conv.h"
#include "train/config.h"
#include "train/flops.h"

using namespace performer;

namespace {

EncoderConfig block_config(Activation activation, bool local_ffn) {
  EncoderConfig c;
  c.kind = AttentionKind::kExact;  // the attention half is not under test; exact runs in double everywhere
  c.positions = PositionKind::kRotary;
  c.layers = 2, c.heads = 2, c.d_model = 16, c.d_ff = 24, c.max_len = 64, c.dropout = 0;
  c.local_kernel = 5;
  c.local_ffn = local_ffn;
  c.activation = activation;
  c.seed = 11;
  return c;
}

// The feed-forward nonlinearity written out element-wise, in double: a = W1 m + b1 (and g = Wg m + bg).
at::Tensor act(Activation kind, const at::Tensor& a, const at::Tensor& g) {
  switch (kind) {
    case Activation::kGelu: return 0.5 * a * (1.0 + torch::erf(a / std::sqrt(2.0)));
    case Activation::kRelu2: return torch::where(a > 0, a * a, torch::zeros_like(a));
    case Activation::kSwiglu: return g / (1.0 + torch::exp(-g)) * a;
  }
  return {};
}

double max_error(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(FeedForward, BlockMatchesItsFormulaInDoubleForEveryActivationWithAndWithoutTheConvolution) {
  for (Activation kind : {Activation::kGelu, Activation::kRelu2, Activation::kSwiglu}) {
    for (bool local_ffn : {false, true}) {
      const EncoderConfig c = block_config(kind, local_ffn);
      Encoder model(c);
      model->to(torch::kDouble);
      model->eval();
      torch::NoGradGuard no_grad;
      auto* layer = model->layers[1]->as<EncoderLayerImpl>();
      torch::manual_seed(5);
      const at::Tensor h = torch::randn({2, 19, 16}, torch::kDouble);
      at::Tensor mask = torch::ones({2, 19}, torch::kBool);
      mask[1].narrow(0, 12, 7).fill_(false);
      // The attention half through the layer's own modules, then the feed-forward half by hand.
      const at::Tensor n = layer->norm1(h);
      const at::Tensor x =
          h + layer->attn->forward(n, mask) + local_conv_reference(n, mask, layer->local_weight, layer->local_bias);
      const at::Tensor m = layer->norm2(x);
      const at::Tensor a = torch::matmul(m, layer->ff1->weight.t()) + layer->ff1->bias;
      const at::Tensor g = layer->ff_gate ? torch::matmul(m, layer->ff_gate->weight.t()) + layer->ff_gate->bias : at::Tensor();
      at::Tensor want = x + torch::matmul(act(kind, a, g), layer->ff2->weight.t()) + layer->ff2->bias;
      if (local_ffn) want = want + local_conv_reference(m, mask, layer->local_ff_weight, layer->local_ff_bias);
      const at::Tensor got = layer->forward(h, mask);
      // Both sides in double, differing only in the order of operations: 1e-12 is ~1e4 roundings of values ~10.
      EXPECT_LT(max_error(got, want), 1e-12) << activation_name(kind) << (local_ffn ? " with" : " without")
                                            << " the feed-forward convolution";
      // The activations differ from one another: the check above could not pass with the wrong one.
      if (kind != Activation::kGelu) {
        EXPECT_GT(max_error(act(kind, a, g), act(Activation::kGelu, a, g)), 1e-3) << activation_name(kind);
      }
    }
  }
}

TEST(FeedForward, ParametersNamesRulesFlopsAndExport) {
  EncoderConfig c = block_config(Activation::kGelu, false);
  c.lm_head = LmHead::kEsm;
  c.local_kernel = 0;
  EXPECT_EQ(hf_export_blocker(c), "");
  const int64_t gelu = Encoder(c)->num_parameters();
  const double gelu_flops = training_flops_per_token(c, 64);
  const double D = 16, F = 24, k = 5, N = 2;

  c.activation = Activation::kRelu2;
  EXPECT_EQ(Encoder(c)->num_parameters(), gelu);
  EXPECT_DOUBLE_EQ(training_flops_per_token(c, 64), gelu_flops);
  EXPECT_NE(hf_export_blocker(c).find("model.activation is relu2"), std::string::npos) << hf_export_blocker(c);

  c.activation = Activation::kSwiglu;
  Encoder swiglu(c);
  EXPECT_EQ(swiglu->num_parameters(), gelu + 2 * (24 * 16 + 24));
  EXPECT_TRUE(swiglu->named_parameters().contains("layers.1.ff_gate.weight"));
  EXPECT_DOUBLE_EQ(training_flops_per_token(c, 64), gelu_flops + N * 3 * 2 * D * F);  // 6 FLOPs per Wg weight
  EXPECT_NE(hf_export_blocker(c).find("model.activation is swiglu"), std::string::npos);

  c.activation = Activation::kGelu;
  c.local_kernel = 5;
  EncoderConfig one = c;  // the convolution beside attention only
  c.local_ffn = true;
  Encoder both(c);
  EXPECT_EQ(both->num_parameters(), Encoder(one)->num_parameters() + 2 * (16 * 5 + 16));
  const auto params = both->named_parameters();
  ASSERT_TRUE(params.contains("layers.1.local_ff_weight"));
  EXPECT_EQ(params["layers.1.local_ff_weight"].sizes(), (std::vector<int64_t>{16, 5}));
  EXPECT_TRUE(params.contains("layers.0.local_ff_bias"));
  EXPECT_NE(c.describe().find("beside attention and feed-forward"), std::string::npos) << c.describe();
  EXPECT_DOUBLE_EQ(training_flops_per_token(c, 64), training_flops_per_token(one, 64) + N * 3 * 2 * k * D);

  c.local_kernel = 0;  // the feed-forward convolution takes its width from model.local_kernel
  EXPECT_THROW(c.validate(), std::exception);
}

TEST(FeedForward, ParsesItsNamesAndRefusesOthers) {
  for (Activation a : {Activation::kGelu, Activation::kRelu2, Activation::kSwiglu})
    EXPECT_EQ(parse_activation(activation_name(a)), a);
  try {
    parse_activation("relu");
    FAIL() << "accepted 'relu'";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("gelu, relu2 or swiglu"), std::string::npos) << e.what();
  }
}

TEST(FeedForward, ConfigsWithoutTheKeysKeepGeluAndTheKeysRoundTrip) {
  // A config (or a checkpoint's stored config) from before the keys existed: the defaults, GELU and no
  // second convolution.
  const RunConfig old = parse_config("model:\n  layers: 2\n  local_kernel: 7\n", "old.yaml");
  EXPECT_EQ(old.model.activation, Activation::kGelu);
  EXPECT_FALSE(old.model.local_ffn);
  RunConfig c = parse_config("model:\n  local_kernel: 7\n  local_ffn: true\n  activation: swiglu\n", "new.yaml");
  EXPECT_EQ(c.model.activation, Activation::kSwiglu);
  EXPECT_TRUE(c.model.local_ffn);
  const RunConfig back = parse_config(config_to_yaml(c), "round trip");
  EXPECT_EQ(back.model.activation, Activation::kSwiglu);
  EXPECT_TRUE(back.model.local_ffn);
  try {
    parse_config("model:\n  activation: tanh\n", "bad.yaml");
    FAIL() << "accepted activation tanh";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("bad.yaml"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.activation"), std::string::npos) << e.what();
  }
}
