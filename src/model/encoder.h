// The Performer encoder for masked (or causal) protein language modelling.
//
//   tokens [B, L] -> embed [B, L, D] (+ learned absolute positions, or rotary inside attention)
//   -> layers x { h = h + Dropout(Attention(LayerNorm(h)));  h = h + Dropout(FF(LayerNorm(h))) }
//      FF(x) = W2 Dropout(act(W1 x))         (pre-LayerNorm blocks; model.activation, below)
// model.local_kernel k > 0 adds a depthwise convolution over positions to the attention branch:
//   h = h + Dropout(Attention(n) + Local(n)),  n = LayerNorm(h),
//   Local(n)_i = b + sum_{o = -(k-1)/2 .. (k-1)/2} w_o * n_{i+o}   (per channel; padding positions read as 0)
// and model.local_ffn: true adds another (its own weights, the same width) to the feed-forward branch:
//   h = h + Dropout(FF(m) + Local'(m)),  m = LayerNorm(h)
//   -> LayerNorm -> logits [B, L, 33] = h E^T + b      (MLM head tied to the token embedding E)
//
// model.activation, the feed-forward nonlinearity (W1 [F, D], W2 [D, F]; swiglu adds Wg [F, D]):
//   gelu    act(W1 x) = GELU(W1 x)                          (the exact erf form; ESM-2's)
//   relu2   act(W1 x) = ReLU(W1 x)^2                        (squared ReLU)
//   swiglu  act(W1 x) = SiLU(Wg x) * (W1 x)                 (gated; 3 D F weights instead of 2 D F)
//
// model.lm_head: esm puts ESM-2's head between the final LayerNorm and the tied decoder:
//   logits = LayerNorm(GELU(h W + c)) E^T + b      (W [D, D]; the exact erf GELU)
// and model.token_dropout: true, ESM-2's token dropout on the embeddings (train and eval alike):
//   e_i = 0 at <mask> tokens;  e *= (1 - 0.15 * 0.8) / (1 - masked / length)   (per row; length = real tokens)
// With rotary positions (and no causal mask) such a model maps weight for weight onto HuggingFace's
// EsmForMaskedLM (interop/hf_esm.h). It also carries ESM-2's contact regression (buffers
// "contact_regression_weight" [1, layers x heads] and "contact_regression_bias" [1]) so that an imported
// model keeps it and an export writes it; training leaves them unchanged.
//
// Parameter names are stable and readable, e.g. "embed.weight", "positions.weight",
// "layers.3.attn.q_proj.weight", "layers.3.ff1.bias", "final_norm.weight", "lm_bias"; buffers
// "layers.3.attn.projection" and "layers.3.attn.feature_draw". Checkpoints store them under these names.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "model/attention.h"

namespace performer {

// Where positions enter: a learned absolute embedding added to the tokens, or rotary on q and k.
enum class PositionKind { kLearned, kRotary };
const std::vector<std::string>& position_kind_names();  // "learned", "rotary"
PositionKind parse_position_kind(const std::string& s);
std::string position_kind_name(PositionKind p);

// The MLM head: the final LayerNorm's output times the token embedding (tied), or ESM-2's dense-GELU-
// LayerNorm before that same tied decoder.
enum class LmHead { kTied, kEsm };
const std::vector<std::string>& lm_head_names();  // "tied", "esm"
LmHead parse_lm_head(const std::string& s);
std::string lm_head_name(LmHead h);

// The feed-forward nonlinearity (model.activation; formulas at the top of this file).
enum class Activation { kGelu, kRelu2, kSwiglu };
const std::vector<std::string>& activation_names();  // "gelu", "relu2", "swiglu"
Activation parse_activation(const std::string& s);
std::string activation_name(Activation a);

// ESM-2's token dropout: the fraction of tokens masked in training that the embeddings' rescaling assumes
// (ESM-2 and transformers' EsmEmbeddings fix it at 15% selected x 80% <mask>, whatever data.mask_rate is).
constexpr double kEsmMaskRatioTrain = 0.15 * 0.8;

struct EncoderConfig {
  AttentionKind kind = AttentionKind::kFavorSoftmax;
  int64_t layers = 6;
  int64_t heads = 8;
  int64_t d_model = 512;
  int64_t d_ff = 1024;
  int64_t features = 256;
  int64_t redraw_interval = 1000;  // training steps between feature redraws; 0 = never
  bool causal = false;
  double dropout = 0.1;
  int64_t max_len = 1024;
  PositionKind positions = PositionKind::kLearned;
  LmHead lm_head = LmHead::kTied;
  bool token_dropout = false;      // ESM-2's token dropout on the embeddings (see the top of this file)
  int64_t local_kernel = 0;        // odd width of a depthwise convolution over positions beside attention; 0 = none
  bool local_ffn = false;          // another such convolution beside the feed-forward block (needs local_kernel)
  Activation activation = Activation::kGelu;  // the feed-forward nonlinearity
  bool orthogonal = true;
  RowNorms row_norms = RowNorms::kChi;
  bool relu_projection = true;
  int64_t causal_chunk = 128;
  bool favor_lean = true;          // see AttentionOptions::favor_lean
  int64_t favor_chunk = 0;         // see AttentionOptions::favor_chunk
  uint64_t seed = 0;               // initialization and feature draws

  void validate() const;           // rules between fields; throws SettingError naming the key
  std::string describe() const;    // one line
};

class EncoderLayerImpl : public torch::nn::Module {
 public:
  EncoderLayerImpl(const EncoderConfig& config, int64_t layer);
  // h [B, L, D] -> [B, L, D]; with `weights`, also the attention probabilities it applied [B, H, L, L].
  at::Tensor forward(const at::Tensor& h, const at::Tensor& key_mask, at::Tensor* weights = nullptr);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  SelfAttention attn{nullptr};
  at::Tensor local_weight, local_bias;  // model.local_kernel > 0: [D, k], [D] ("layers.i.local_weight", "layers.i.local_bias")
  at::Tensor local_ff_weight, local_ff_bias;  // model.local_ffn: [D, k], [D] ("layers.i.local_ff_weight", ...)
  torch::nn::Linear ff1{nullptr}, ff2{nullptr};
  torch::nn::Linear ff_gate{nullptr};  // model.activation swiglu: Wg ("layers.i.ff_gate.weight", ".bias")
  torch::nn::Dropout dropout{nullptr};

 private:
  at::Tensor feed_forward(const at::Tensor& m);  // act(W1 m) through W2, before the residual's dropout
  Activation activation_ = Activation::kGelu;
};
TORCH_MODULE(EncoderLayer);

class EncoderImpl : public torch::nn::Module {
 public:
  explicit EncoderImpl(const EncoderConfig& config);

  // tokens [B, L] int64, key_mask [B, L] bool (true = real token) or undefined -> logits [B, L, 33].
  at::Tensor forward(const at::Tensor& tokens, const at::Tensor& key_mask = {});
  // The MLM head alone: final hidden states [B, L, D] -> logits [B, L, 33].
  at::Tensor logits(const at::Tensor& h);
  // Final hidden states [B, L, D] (before the LM head). With `maps`, the layers it names (0-based) also
  // return the attention probabilities [B, H, L, L] they apply in this same pass (softmax for exact,
  // D^-1 phi(Q) phi(K)^T for FAVOR with the current features), in maps->weights.
  struct AttentionMaps {
    std::vector<int64_t> layers;
    std::vector<at::Tensor> weights;  // one per entry of `layers`
  };
  // With `states`, the hidden states [B, L, D] after the layers it names: 0 = the embeddings (tokens and
  // positions), k = the output of block k, config().layers = the last block's output after the final
  // LayerNorm (what the LM head reads, and what hidden() returns).
  struct LayerStates {
    std::vector<int64_t> layers;
    std::vector<at::Tensor> states;  // one per entry of `layers`
  };
  at::Tensor hidden(const at::Tensor& tokens, const at::Tensor& key_mask = {}, AttentionMaps* maps = nullptr,
                    LayerStates* states = nullptr);
  // hidden() with maps of `layers`, the hidden states dropped. Eval-mode use.
  std::vector<at::Tensor> attention_maps(const at::Tensor& tokens, const at::Tensor& key_mask,
                                         const std::vector<int64_t>& layers);
  // Redraws random features for training step `step` (draw = step / redraw_interval). Call in training only.
  // Returns whether a layer drew new features.
  bool update_features(int64_t step);
  const EncoderConfig& config() const { return config_; }
  int64_t num_parameters() const;

  torch::nn::Embedding embed{nullptr}, positions{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};
  torch::nn::Dropout dropout{nullptr};
  at::Tensor lm_bias;
  // model.lm_head esm only ("lm_head.dense.*", "lm_head.norm.*"; the contact regression as buffers).
  torch::nn::Linear lm_dense{nullptr};
  torch::nn::LayerNorm lm_norm{nullptr};
  at::Tensor contact_weight, contact_bias;

 private:
  EncoderConfig config_;
};
TORCH_MODULE(Encoder);

}  // namespace performer
