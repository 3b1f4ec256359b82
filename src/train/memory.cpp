#include "train/memory.h"

#include <algorithm>

#include "data/alphabet.h"
#include "model/exact_attention.h"
#include "util/device.h"
#include "util/error.h"
#include "util/text.h"

namespace performer {

namespace {
constexpr double kSlack = 1.1;        // allocator rounding and caching
constexpr double kVocabulary = Alphabet::kSize;
}  // namespace

TrainingMemory predict_training_memory(const RunConfig& c) {
  const double L = static_cast<double>(c.data.max_len);
  const double rows = static_cast<double>(std::max<int64_t>(1, c.data.tokens_per_batch / c.data.max_len));
  const double T = rows * L, D = static_cast<double>(c.model.d_model), F = static_cast<double>(c.model.d_ff);
  const double H = static_cast<double>(c.model.heads), m = static_cast<double>(c.model.features);
  const double N = static_cast<double>(c.model.layers), V = kVocabulary;
  const bool exact = c.model.kind == AttentionKind::kExact;
  // Parameters: per layer 4 D^2 + 2 D F (+ biases and norms); the token embedding (tied with the LM head),
  // the LM bias and the final norm; learned positions; ESM-2's head (dense D x D, its LayerNorm).
  // model.activation swiglu: the gate Wg (D F + F) and two more [L, F] tensors (its output and the product);
  // model.local_ffn: a second convolution (k D + D) per layer, its output one more [L, D] tensor.
  const bool swiglu = c.model.activation == Activation::kSwiglu;
  const double k = static_cast<double>(c.model.local_kernel);
  const double ff = (swiglu ? 3 : 2) * D * F + (swiglu ? 2 : 1) * F;
  const double local = (c.model.local_kernel > 0 ? k * D + D : 0) * (c.model.local_ffn ? 2 : 1);
  double P = N * (4 * D * D + ff + 9 * D + local) + 2 * V * D + D;
  if (c.model.positions == PositionKind::kLearned) P += L * D;
  if (c.model.lm_head == LmHead::kEsm) P += D * D + 3 * D;
  TrainingMemory r;
  r.parameters = 16.0 * P;
  // The 12 D covers the layer's [L, D] tensors, the attention output among them. FAVOR with stored
  // features keeps ~6 [L, m] feature tensors per head besides; the lean bidirectional core
  // (model/lean_favor.h) only two numbers per position and head (the query shift and the normalizer).
  const bool lean = !exact && !c.model.causal && c.model.favor_lean;
  const double favor = exact ? 0.0 : lean ? 2 * H : 6 * H * m;
  r.activations =
      kSlack * (4.0 * T * N * (12 * D + (swiglu ? 4 : 2) * F + (c.model.local_ffn ? D : 0) + favor) + 4.0 * T * V * 4);
  if (exact && exact_attention_stores_scores()) r.attention = kSlack * 4.0 * rows * H * L * L * (N + 2);
  r.parameters *= kSlack;
  return r;
}

double predict_training_bytes(const RunConfig& c, double corpus_bytes) {
  return predict_training_memory(c).total() + corpus_bytes;
}

void check_training_memory(const RunConfig& c, const c10::Device& device) {
  const double have = static_cast<double>(device_memory_bytes(device));
  const TrainingMemory need = predict_training_memory(c);
  if (have <= 0 || need.total() <= have) return;
  std::string parts = "parameters with gradients and optimizer state " + human_bytes(need.parameters) + ", activations " +
                      human_bytes(need.activations);
  if (need.attention > 0) parts += ", exact attention matrices " + human_bytes(need.attention);
  throw Error("this run needs about " + human_bytes(need.total()) + " of memory (" + parts + ") but the " +
              (device.is_cuda() ? "GPU" : "machine") + " has " + human_bytes(have) +
              "; lower model.d_model, model.d_ff or model.layers, or data.tokens_per_batch (or pass "
              "--skip-memory-check to try anyway)");
}

}  // namespace performer
