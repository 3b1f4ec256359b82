// The models' loss: cross-entropy of the logits at the predicted positions (label != kIgnoreIndex), over
// the full 33-token softmax, computed in float32 whatever the logits' type. One implementation for
// training (the differentiable sum), the trainer's evaluation and `performer eval` (per-row sums).
//   logits [B, L, V], labels [B, L] int64
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace performer {

struct LossSums {
  at::Tensor loss_sum;     // scalar, differentiable: cross-entropy summed over the predicted positions (nats)
  at::Tensor row_loss;     // [B] float64, detached: the same sum per row (on the logits' device)
  at::Tensor row_count;    // [B] int64: predicted positions per row
  at::Tensor row_correct;  // [B] int64: of them, argmax == label
  int64_t count = 0;       // predicted positions
  int64_t correct = 0;     // of them, argmax == label
};

LossSums cross_entropy_sums(const at::Tensor& logits, const at::Tensor& labels);

}  // namespace performer
