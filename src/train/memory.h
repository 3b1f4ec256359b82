// Memory a training run needs, predicted from its config before anything is allocated, so that a model or
// batch too large for the device is refused at once with the figure (instead of an allocator failure
// minutes in, or the machine swapping).
//
// Predicted peak, in bytes, for P parameters, T = rows x L tokens per batch (rows = tokens_per_batch / L):
//   parameters, gradients and AdamW moments          16 P
//   activations kept for backward, per layer         4 T (12 D + 2 F [+ 6 H m for FAVOR with stored
//                                                    features, + 2 H for the lean bidirectional core])
//   logits, log-probabilities and their gradient     4 T V x 4
//   exact attention: one [rows, H, L, L] float32 probability matrix saved per layer, and two more alive
//   while a layer runs (scores, their gradient)      4 rows H L^2 (layers + 2)
// times 1.1 for allocator slack. Without the exact term with LibTorch >= 2, on every device: the fused
// scaled-dot-product attention does not store the L x L matrix (model/exact_attention.h). Measured against peak RSS on the
// long-sequence sweep (docs/long-sequences.md), where it is an upper bound within a factor of two.
#pragma once
#include <string>

#include <c10/core/Device.h>

#include "train/config.h"

namespace performer {

struct TrainingMemory {
  double parameters = 0;   // parameters, gradients, optimizer moments
  double activations = 0;  // activations, logits (slack included)
  double attention = 0;    // exact attention's L x L matrices (slack included)
  double total() const { return parameters + activations + attention; }
};

TrainingMemory predict_training_memory(const RunConfig& config);
// The prediction's total plus `corpus_bytes` of loaded data.
double predict_training_bytes(const RunConfig& config, double corpus_bytes);

// Throws Error (one line: the need, its parts, the device's memory, what to lower) when the predicted need
// exceeds the memory of `device` (util/device.h: device_memory_bytes).
void check_training_memory(const RunConfig& config, const c10::Device& device);

}  // namespace performer
