// Model FLOPs of training, for throughput in TFLOP/s and model FLOPs utilization (MFU):
//   MFU = tokens/s x training FLOPs per token / the device's peak FLOP/s.
//
// Per token of a sequence of length L, forward, with D = d_model, F = d_ff, H heads of d_head = D / H,
// m random features, V = 33 (the vocabulary), N layers (a multiply-add counts 2 FLOPs):
//   projections q, k, v, out                2 x 4 D^2          per layer
//   feed-forward                            2 x 2 D F          per layer
//   attention core, exact                   2 x 2 L D          per layer (q k^T and p v; causal counted whole,
//                                                              as is usual, so causal MFU is an upper bound)
//   attention core, FAVOR                   2 x 4 m D          per layer (phi(q), phi(k): m x d_head per head
//                                                              each; k^T v and phi(q) S: m x d_head each)
//   LM head (tied with the embedding)       2 D V
// Training = forward + backward = 3 x forward (backward: gradients of inputs and of weights). Element-wise
// work (norms, activations, softmax, exp of the features) is left out: MFU counts matmul work only.
#pragma once
#include "model/encoder.h"

namespace performer {

// Training FLOPs per token at sequence length `length`.
double training_flops_per_token(const EncoderConfig& model, int64_t length);

}  // namespace performer
