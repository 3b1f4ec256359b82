// Model FLOPs of training, for throughput in TFLOP/s and model FLOPs utilization (MFU):
//   MFU = tokens/s x training FLOPs per token / the device's peak FLOP/s.
//
// Per token of a row of L tokens, forward, with D = d_model, F = d_ff, H heads of d_head = D / H, m random
// features (m' = m, or d_head for favor-relu without projection), chunk c of causal FAVOR, V = 33 (the
// vocabulary), N layers; a multiply-add counts 2 FLOPs:
//   projections q, k, v, out                2 x 4 D^2                  per layer
//   feed-forward                            2 x 2 D F                  per layer (model.activation swiglu:
//                                                                      2 x 3 D F, its gate Wg)
//   local convolutions (model.local_kernel) 2 k D                      per layer, and as much again for
//                                                                      model.local_ffn
//   attention core, exact                   2 x 2 L D                  per layer (q k^T and p v; causal counted
//                                                                      whole, as is usual: an upper bound)
//   attention core, FAVOR                   2 x 2 m D                  per layer, the features phi(q), phi(k)
//                                                                      (m x d_head per head each; none for
//                                                                      favor-relu without projection)
//                                         + 2 x 2 m' D                 k^T v and phi(q) S (m' x d_head each)
//                                         + 2 c H (m' + d_head)        causal only: the masked c x c products
//                                                                      inside each chunk
//   LM head (tied with the embedding)       2 D V    (+ 2 D^2 for model.lm_head esm: its dense layer)
// Training = forward + backward = 3 x forward (backward: gradients of inputs and of weights). Element-wise
// work (norms, activations, softmax, exp of the features) is left out: MFU counts matmul work only. So is
// recomputation: the lean bidirectional FAVOR core (model/lean_favor.h) computes phi(q), phi(k) again in
// backward (2 x 2 m D more per token and layer), which these model FLOPs do not count.
// L is the row width: exact with data.concat (every row max_len tokens); without it rows of a batch are as
// wide as its longest protein, so at L = max_len the exact attention term is an upper bound.
#pragma once
#include "model/encoder.h"

namespace performer {

// Training FLOPs per token in rows of `length` tokens.
double training_flops_per_token(const EncoderConfig& model, int64_t length);

}  // namespace performer
