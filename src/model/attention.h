// Multi-head self-attention with a choice of mechanism:
//   exact          softmax(q k^T / sqrt(d)) v, O(L^2)                        (Transformer baseline)
//   favor-softmax  FAVOR+ positive orthogonal random features for softmax    (kernels.h)
//   favor-relu     FAVOR generalized attention with ReLU features            (kernels.h)
// all bidirectional or causal. The random projection W [m, d_head] is a buffer ("projection"), redrawn
// in place without gradient by redraw(draw); the matrix of draw n is a pure function of
// (seed, layer, n), so a resumed run redraws exactly the same matrices. Its draw number is a buffer
// too ("feature_draw"), so checkpoints carry it.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

#include "model/kernels.h"

namespace performer {

enum class AttentionKind { kExact, kFavorSoftmax, kFavorRelu };
const std::vector<std::string>& attention_kind_names();     // "exact", "favor-softmax", "favor-relu"
AttentionKind parse_attention_kind(const std::string& s);  // throws Error for any other name
std::string attention_kind_name(AttentionKind k);

struct AttentionOptions {
  AttentionKind kind = AttentionKind::kFavorSoftmax;
  int64_t d_model = 512;
  int64_t heads = 8;
  int64_t features = 256;          // m
  bool causal = false;
  bool orthogonal = true;          // orthogonal blocks (false: i.i.d. Gaussian rows)
  RowNorms row_norms = RowNorms::kChi;
  bool relu_projection = true;     // favor-relu: false = deterministic ReLU(x) features, m = d_head
  double relu_eps = 1e-3;
  bool rotary = false;             // rotary positions on q, k
  int64_t causal_chunk = 128;
  bool favor_lean = true;          // bidirectional FAVOR: the memory-lean core (model/lean_favor.h), which
                                   // recomputes features in backward; false = features stored whole
  int64_t favor_chunk = 0;         // the lean core's positions per chunk; 0 = automatic (auto_favor_chunk)
  uint64_t seed = 0;
  int64_t layer = 0;
};

// The FAVOR core of a layer with options `o` and projection W [m, d_head] (empty for the deterministic
// ReLU features): q, k, v [B, H, L, d_head] -> [B, H, L, d_head]. Computed in float32 at least with
// autocast off, whatever the caller's precision. Bidirectional with o.favor_lean and no `weights`: the
// memory-lean core (model/lean_favor.h), which stores no [L, m] features. With `weights`, also the implicit
// attention matrix D^-1 phi(Q) phi(K)^T [B, H, L, L] of the same features (the features stored whole).
at::Tensor favor_core(const AttentionOptions& o, const at::Tensor& W, const at::Tensor& q, const at::Tensor& k,
                      const at::Tensor& v, const at::Tensor& key_mask, at::Tensor* weights = nullptr);

class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(const AttentionOptions& options);

  // x [B, L, d_model], key_mask [B, L] bool (true = real token) or undefined -> [B, L, d_model].
  // With `weights`, also the attention probabilities [B, H, L, L] it applies, from the same projections
  // and features: softmax for exact, the implicit D^-1 phi(Q) phi(K)^T for FAVOR (O(L^2): for export).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& key_mask = {}, at::Tensor* weights = nullptr);
  // The weights alone (forward with `weights`).
  at::Tensor attention_matrix(const at::Tensor& x, const at::Tensor& key_mask = {});

  // favor_core with this layer's options and projection.
  at::Tensor favor(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& key_mask,
                   at::Tensor* weights = nullptr) const;

  // Replaces W by draw number `draw` (no-op if it is already current).
  bool redraw(int64_t draw);  // whether it drew (false: draw `draw` is already in place)
  int64_t current_draw() const { return feature_draw_.item<int64_t>(); }
  const at::Tensor& projection() const { return projection_; }
  const AttentionOptions& options() const { return options_; }
  bool uses_features() const { return options_.kind != AttentionKind::kExact; }

  // q, k, v [B, H, L, d_head] of x [B, L, d_model]: after projection (and rotary), what forward attends with.
  void project(const at::Tensor& x, at::Tensor& q, at::Tensor& k, at::Tensor& v);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  at::Tensor draw_matrix(int64_t draw) const;

  AttentionOptions options_;
  int64_t d_head_;
  at::Tensor projection_;    // [m, d_head], float32 buffer (empty for exact / deterministic ReLU)
  at::Tensor feature_draw_;  // int64 scalar buffer
};
TORCH_MODULE(SelfAttention);

}  // namespace performer
