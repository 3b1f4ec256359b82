#include "train/flops.h"

#include "data/alphabet.h"

namespace performer {

namespace {
constexpr double kVocabulary = Alphabet::kSize;
constexpr double kTrainingPerForward = 3.0;  // forward + backward (inputs and weights)
}  // namespace

double training_flops_per_token(const EncoderConfig& model, int64_t length) {
  const double D = static_cast<double>(model.d_model), F = static_cast<double>(model.d_ff);
  const double L = static_cast<double>(length), m = static_cast<double>(model.features);
  const double core = model.kind == AttentionKind::kExact ? 2.0 * 2.0 * L * D : 2.0 * 4.0 * m * D;
  const double per_layer = 2.0 * 4.0 * D * D + 2.0 * 2.0 * D * F + core;
  const double forward = static_cast<double>(model.layers) * per_layer + 2.0 * D * kVocabulary;
  return kTrainingPerForward * forward;
}

}  // namespace performer
