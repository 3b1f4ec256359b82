#include "model/encoder.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "data/alphabet.h"
#include "model/linear.h"
#include "model/local_conv.h"
#include "util/error.h"
#include "util/names.h"

namespace performer {

const std::vector<std::string>& position_kind_names() {
  static const std::vector<std::string> names{"learned", "rotary"};
  return names;
}

PositionKind parse_position_kind(const std::string& s) { return parse_name<PositionKind>(s, position_kind_names(), "positions"); }

std::string position_kind_name(PositionKind p) { return name_of(p, position_kind_names()); }

const std::vector<std::string>& lm_head_names() {
  static const std::vector<std::string> names{"tied", "esm"};
  return names;
}

LmHead parse_lm_head(const std::string& s) { return parse_name<LmHead>(s, lm_head_names(), "LM head"); }

std::string lm_head_name(LmHead h) { return name_of(h, lm_head_names()); }

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names{"gelu", "relu2", "swiglu"};
  return names;
}

Activation parse_activation(const std::string& s) { return parse_name<Activation>(s, activation_names(), "activation"); }

std::string activation_name(Activation a) { return name_of(a, activation_names()); }

void EncoderConfig::validate() const {
  // The rules between fields. Each field's own range (layers >= 1, dropout in [0, 1), ...) is checked where
  // the value is read: the config schema (train/config.cpp), with the file and line.
  auto need = [](bool ok, const std::string& key, const std::string& what) {
    if (!ok) throw SettingError(key, key + what);
  };
  need(heads >= 1 && d_model % heads == 0, "model.d_model", " must be a positive multiple of model.heads");
  need(positions != PositionKind::kRotary || (d_model / heads) % 2 == 0, "model.positions",
       ": rotary needs an even head dimension (model.d_model / model.heads)");
  need(local_kernel == 0 || (local_kernel > 0 && local_kernel % 2 == 1), "model.local_kernel",
       " must be 0 (none) or an odd width, so that the convolution is centred on each position");
  need(local_kernel == 0 || !causal, "model.local_kernel",
       " must be 0 with model.causal: the centred convolution reads later positions");
  need(!local_ffn || local_kernel > 0, "model.local_ffn",
       ": true needs model.local_kernel > 0 (the width of the feed-forward branch's convolution)");
}

std::string EncoderConfig::describe() const {
  std::ostringstream o;
  o << attention_kind_name(kind) << (causal ? " causal" : "") << ", " << layers << " layers, " << heads << " heads, d "
    << d_model << ", d_ff " << d_ff;
  if (kind == AttentionKind::kFavorRelu && !relu_projection)
    o << ", ReLU features of the heads themselves (m = d_head " << d_model / heads << ", no random projection)";
  else if (kind != AttentionKind::kExact)
    o << ", m " << features << ", redraw " << (redraw_interval > 0 ? "every " + std::to_string(redraw_interval) : "never");
  o << ", max_len " << max_len << ", " << position_kind_name(positions) << " positions";
  if (lm_head == LmHead::kEsm) o << ", ESM-2 LM head";
  if (token_dropout) o << ", token dropout";
  if (local_kernel > 0)
    o << ", local convolution of width " << local_kernel << (local_ffn ? " beside attention and feed-forward" : "");
  if (activation != Activation::kGelu) o << ", " << activation_name(activation) << " feed-forward";
  return o.str();
}

EncoderLayerImpl::EncoderLayerImpl(const EncoderConfig& c, int64_t layer) : activation_(c.activation) {
  AttentionOptions a;
  a.kind = c.kind;
  a.d_model = c.d_model;
  a.heads = c.heads;
  a.features = c.features;
  a.causal = c.causal;
  a.orthogonal = c.orthogonal;
  a.row_norms = c.row_norms;
  a.relu_projection = c.relu_projection;
  a.rotary = c.positions == PositionKind::kRotary;
  a.causal_chunk = c.causal_chunk;
  a.favor_lean = c.favor_lean;
  a.favor_chunk = c.favor_chunk;
  a.seed = c.seed;
  a.layer = layer;
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
  attn = register_module("attn", SelfAttention(a));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
  // As torch::nn::Conv1d initializes a depthwise kernel: U(-1/sqrt(k), 1/sqrt(k)) (fan-in k).
  const double bound = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(c.local_kernel, 1)));
  if (c.local_kernel > 0) {
    local_weight = register_parameter("local_weight", torch::empty({c.d_model, c.local_kernel}).uniform_(-bound, bound));
    local_bias = register_parameter("local_bias", torch::empty({c.d_model}).uniform_(-bound, bound));
  }
  ff1 = register_module("ff1", torch::nn::Linear(c.d_model, c.d_ff));
  ff2 = register_module("ff2", torch::nn::Linear(c.d_ff, c.d_model));
  // Registered after ff1 and ff2 so that a gelu model draws the same initial weights as before these options.
  if (c.activation == Activation::kSwiglu) ff_gate = register_module("ff_gate", torch::nn::Linear(c.d_model, c.d_ff));
  if (c.local_ffn) {
    local_ff_weight =
        register_parameter("local_ff_weight", torch::empty({c.d_model, c.local_kernel}).uniform_(-bound, bound));
    local_ff_bias = register_parameter("local_ff_bias", torch::empty({c.d_model}).uniform_(-bound, bound));
  }
  dropout = register_module("dropout", torch::nn::Dropout(c.dropout));
}

at::Tensor EncoderLayerImpl::forward(const at::Tensor& h, const at::Tensor& key_mask, at::Tensor* weights) {
  const at::Tensor n = norm1(h);
  at::Tensor mixed = attn->forward(n, key_mask, weights);
  if (local_weight.defined()) mixed = mixed + local_conv(n, key_mask, local_weight, local_bias);
  at::Tensor x = h + dropout(mixed);
  const at::Tensor m = norm2(x);
  at::Tensor ff = feed_forward(m);
  if (local_ff_weight.defined()) ff = ff + local_conv(m, key_mask, local_ff_weight, local_ff_bias);
  return x + dropout(ff);
}

at::Tensor EncoderLayerImpl::feed_forward(const at::Tensor& m) {
  at::Tensor a = linear(ff1, m);  // [B, L, F]
  switch (activation_) {
    case Activation::kGelu: a = torch::gelu(a); break;
    case Activation::kRelu2: a = torch::relu(a).square(); break;
    case Activation::kSwiglu: a = torch::silu(linear(ff_gate, m)) * a; break;
  }
  return linear(ff2, dropout(a));
}

EncoderImpl::EncoderImpl(const EncoderConfig& c) : config_(c) {
  c.validate();
  torch::manual_seed(static_cast<uint64_t>(c.seed));  // parameter initialization
  embed = register_module("embed", torch::nn::Embedding(torch::nn::EmbeddingOptions(Alphabet::kSize, c.d_model)
                                                             .padding_idx(Alphabet::kPad)));
  {
    torch::NoGradGuard g;
    embed->weight.normal_(0, std::pow(static_cast<double>(c.d_model), -0.5));
    embed->weight[Alphabet::kPad].zero_();
  }
  if (c.positions == PositionKind::kLearned) {
    positions = register_module("positions", torch::nn::Embedding(c.max_len, c.d_model));
    torch::NoGradGuard g;
    positions->weight.normal_(0, 0.02);
  }
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.layers; ++i) layers->push_back(EncoderLayer(c, i));
  final_norm = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
  dropout = register_module("dropout", torch::nn::Dropout(c.dropout));
  lm_bias = register_parameter("lm_bias", torch::zeros({Alphabet::kSize}));
  if (c.lm_head == LmHead::kEsm) {
    auto head = register_module("lm_head", std::make_shared<torch::nn::Module>());
    lm_dense = head->register_module("dense", torch::nn::Linear(c.d_model, c.d_model));
    lm_norm = head->register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model})));
    contact_weight = register_buffer("contact_regression_weight", torch::zeros({1, c.layers * c.heads}));
    contact_bias = register_buffer("contact_regression_bias", torch::zeros({1}));
  }
}

at::Tensor EncoderImpl::hidden(const at::Tensor& tokens, const at::Tensor& key_mask, AttentionMaps* maps,
                               LayerStates* states) {
  const int64_t L = tokens.size(1);
  if (L > config_.max_len && config_.positions == PositionKind::kLearned)
    throw Error("sequence of " + std::to_string(L) + " tokens exceeds model.max_len " + std::to_string(config_.max_len));
  if (maps) {
    for (int64_t l : maps->layers)
      if (l < 0 || l >= config_.layers)
        throw Error("layer " + std::to_string(l) + " does not exist (the model has " + std::to_string(config_.layers) + ")");
    maps->weights.assign(maps->layers.size(), at::Tensor());
  }
  if (states) {
    for (int64_t l : states->layers)
      if (l < 0 || l > config_.layers)
        throw Error("layer " + std::to_string(l) + " has no hidden states (the model has layers 0.." +
                    std::to_string(config_.layers) + ", 0 = the embeddings)");
    states->states.assign(states->layers.size(), at::Tensor());
  }
  auto keep = [&](int64_t layer, const at::Tensor& h) {
    if (!states) return;
    for (size_t k = 0; k < states->layers.size(); ++k)
      if (states->layers[k] == layer) states->states[k] = h;
  };
  // A mask without padding is dropped here, once per forward: the layers then skip their masking work
  // without a device synchronization each.
  const at::Tensor mask = key_mask.defined() && !key_mask.all().item<bool>() ? key_mask : at::Tensor();
  at::Tensor h = embed(tokens);
  if (config_.token_dropout) {
    // ESM-2's token dropout: <mask> embeddings zeroed, the rest scaled by the ratio of the training mask
    // fraction to this row's (masked / real tokens, padding not counted).
    const at::Tensor masked = tokens == static_cast<int64_t>(Alphabet::kMask);                     // [B, L]
    const at::Tensor length = key_mask.defined() ? key_mask.sum(-1).to(at::kFloat)
                                                 : at::full({tokens.size(0)}, static_cast<double>(L),
                                                            tokens.options().dtype(at::kFloat));  // [B]
    const at::Tensor observed = masked.sum(-1).to(at::kFloat) / length;                                // [B]
    h = h.masked_fill(masked.unsqueeze(-1), 0.0) *
        ((1.0 - kEsmMaskRatioTrain) / (1.0 - observed)).view({-1, 1, 1}).to(h.scalar_type());
  }
  if (positions) h = h + positions(at::arange(L, tokens.options())).unsqueeze(0);
  h = dropout(h);
  keep(0, h);
  for (int64_t i = 0; i < config_.layers; ++i) {
    at::Tensor weights;
    const bool wanted = maps && std::count(maps->layers.begin(), maps->layers.end(), i) > 0;
    h = layers[static_cast<size_t>(i)]->as<EncoderLayer>()->forward(h, mask, wanted ? &weights : nullptr);
    if (wanted)
      for (size_t w = 0; w < maps->layers.size(); ++w)
        if (maps->layers[w] == i) maps->weights[w] = weights;
    if (i + 1 < config_.layers) keep(i + 1, h);
  }
  h = final_norm(h);
  keep(config_.layers, h);
  return h;
}

std::vector<at::Tensor> EncoderImpl::attention_maps(const at::Tensor& tokens, const at::Tensor& key_mask,
                                                    const std::vector<int64_t>& wanted) {
  AttentionMaps maps{wanted, {}};
  hidden(tokens, key_mask, &maps);
  return maps.weights;
}

at::Tensor EncoderImpl::logits(const at::Tensor& hidden_states) {
  at::Tensor h = hidden_states;
  if (lm_dense) h = lm_norm(torch::gelu(linear(lm_dense, h)));  // ESM-2's head; gelu is the exact erf form
  return at::linear(h, embed->weight.to(h.scalar_type()), lm_bias.to(h.scalar_type()));
}

at::Tensor EncoderImpl::forward(const at::Tensor& tokens, const at::Tensor& key_mask) {
  return logits(hidden(tokens, key_mask));
}

bool EncoderImpl::update_features(int64_t step) {
  const int64_t draw = config_.redraw_interval > 0 ? step / config_.redraw_interval : 0;
  bool drew = false;
  for (const auto& layer : *layers) drew = layer->as<EncoderLayer>()->attn->redraw(draw) || drew;
  return drew;
}

int64_t EncoderImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace performer
