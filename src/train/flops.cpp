#include "train/flops.h"

#include "data/alphabet.h"

namespace performer {

namespace {
constexpr double kVocabulary = Alphabet::kSize;
constexpr double kTrainingPerForward = 3.0;  // forward + backward (inputs and weights)

// Forward FLOPs per token of one layer's attention core (the formulas of flops.h).
double attention_core(const EncoderConfig& model, double L) {
  const double D = static_cast<double>(model.d_model), H = static_cast<double>(model.heads);
  const double d_head = D / H, m = static_cast<double>(model.features);
  if (model.kind == AttentionKind::kExact) return 2.0 * 2.0 * L * D;
  const bool projected = model.kind == AttentionKind::kFavorSoftmax || model.relu_projection;
  const double features = projected ? m : d_head;
  double flops = (projected ? 2.0 * 2.0 * m * D : 0.0) + 2.0 * 2.0 * features * D;
  if (model.causal) flops += 2.0 * static_cast<double>(model.causal_chunk) * H * (features + d_head);
  return flops;
}
}  // namespace

double training_flops_per_token(const EncoderConfig& model, int64_t length) {
  const double D = static_cast<double>(model.d_model), F = static_cast<double>(model.d_ff);
  // depthwise convolutions: beside attention, and with model.local_ffn beside the feed-forward block too
  const double local = (model.local_ffn ? 2.0 : 1.0) * 2.0 * D * static_cast<double>(model.local_kernel);
  const double ff_matrices = model.activation == Activation::kSwiglu ? 3.0 : 2.0;  // swiglu's gate Wg
  const double per_layer =
      2.0 * 4.0 * D * D + ff_matrices * 2.0 * D * F + attention_core(model, static_cast<double>(length)) + local;
  const double head = (model.lm_head == LmHead::kEsm ? 2.0 * D * D : 0.0) + 2.0 * D * kVocabulary;
  const double forward = static_cast<double>(model.layers) * per_layer + head;
  return kTrainingPerForward * forward;
}

}  // namespace performer
