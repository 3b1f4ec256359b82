// The optimizer, written out so its state is plain named tensors that checkpoints store and restore
// exactly (and identically on LibTorch 1.x and 2.x). Two update rules (train.optimizer):
//
// adamw, every parameter (t = step count after this step):
//   m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
//   p <- p - lr wd p                (only parameters with >= 2 dimensions: weight matrices, embeddings)
//   p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//
// muon: the blocks' linear weight matrices (q, k, v, out, ff1, ff2, ff_gate; see muon_parameter) by Muon
// (Jordan et al. 2024), everything else (embeddings, the LM head, norms, biases, convolutions) by AdamW:
//   m <- mu m + g                   (stored as exp_avg; exp_avg_sq stays 0 for these)
//   u <- g + mu m                   (Nesterov momentum)
//   O <- newton_schulz5(u)          (about U V^T for u = U S V^T: the update with every singular value ~1)
//   p <- p - lr wd p - lr 0.2 sqrt(max(rows, cols)) O
// The factor 0.2 sqrt(max(rows, cols)) gives O about the RMS of an AdamW update, so train.lr and
// train.weight_decay keep their AdamW meaning for both groups (Liu et al. 2025, "Muon is scalable for LLM
// training").
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace performer {

// The update rule for the blocks' weight matrices (one type, one parser).
enum class OptimizerKind { kAdamW, kMuon };
const std::vector<std::string>& optimizer_names();  // "adamw", "muon"
OptimizerKind parse_optimizer(const std::string& s);
std::string optimizer_name(OptimizerKind k);

struct OptimizerOptions {
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-9, weight_decay = 0.1;
  OptimizerKind kind = OptimizerKind::kAdamW;
  double muon_momentum = 0.95;  // mu above
  // The Newton-Schulz iterations' dtype (newton_schulz5): Undefined = the parameters' own (float32, or
  // float64), or bf16 where the run computes in bf16 and bf16 GEMMs sum in float32 (the trainer decides:
  // util/precision.h). The matrices of one shape (a tall one transposed) go through it as one batch.
  at::ScalarType newton_schulz_dtype = at::ScalarType::Undefined;
};

// True for the parameters Muon updates under kind muon: the 2-D weights of the encoder blocks' linear
// layers ("layers.<i>.<...>.weight"), not the depthwise convolutions' (layers.<i>.local_weight).
bool muon_parameter(const std::string& name, const at::Tensor& p);

// The quintic Newton-Schulz iteration: X0 = G / (||G||_F + 1e-7), transposed when rows > cols so that
// A = X X^T is the smaller Gram matrix, then five times X <- a X + (b A + c A^2) X with A = X X^T and
// (a, b, c) = (3.4445, -4.7750, 2.0315). On G = U S V^T each step maps every singular value s (all in
// (0, 1] after the scaling) to f(s) = a s + b s^3 + c s^5 and keeps U and V, so the result is
// U f^5(S / ||G||_F) V^T: a singular value above about 3e-3 ||G||_F ends between about 0.7 and 1.2
// (f(0) = 0: smaller ones grow by at most a^5 = 486).
// g: one matrix [r, c] or a batch of them [n, r, c], each iterated on its own (one bmm per product for the
// whole batch). The iterations run in `dtype`: float32 (the default; float64 for a float64 input), or
// bf16 (products with float32 sums, each result rounded to bf16: what bf16 runs use, as Muon's authors
// do). In bf16 each step rounds by up to u = 2^-8; near the band the iteration contracts (|f'| <= 1.14 for
// s in [0.7, 1.2]), so the roundings add up over the five steps instead of multiplying, but a singular
// value below about u ||G||_F is lost in the first rounding. The scaling is computed in float32 (float64)
// first. Returns g's shape, in float32 (float64 for a float64 input).
at::Tensor newton_schulz5(const at::Tensor& g, at::ScalarType dtype = at::ScalarType::Undefined);

class Optimizer {
 public:
  Optimizer(std::vector<std::pair<std::string, at::Tensor>> params, OptimizerOptions options);
  void zero_grad();
  void step(double lr);
  int64_t muon_parameters() const;  // how many parameters Muon updates (0 under adamw)
  const OptimizerOptions& options() const { return o_; }

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s) { step_ = s; }
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }
  // First and second moments by parameter name (created zero-filled with the optimizer).
  std::map<std::string, at::Tensor>& exp_avg() { return exp_avg_; }
  std::map<std::string, at::Tensor>& exp_avg_sq() { return exp_avg_sq_; }

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  OptimizerOptions o_;
  std::map<std::string, at::Tensor> exp_avg_, exp_avg_sq_;
  std::vector<bool> muon_;  // per parameter: updated by Muon
  int64_t step_ = 0;
};

// Global L2 norm of all gradients; scales them by clip / norm when clip > 0 and norm > clip.
// Returns the norm before clipping (NaN/Inf when a gradient is not finite).
double clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params, double clip);

// Learning rate at an optimizer step (0-based): linear warm-up over warmup_steps, then constant, linear
// decay to 0 at total_steps, or cosine decay to 0 at total_steps.
// The learning rate after warm-up: constant, or decaying linearly or along a half cosine to 0 at the last step.
enum class Schedule { kConstant, kLinear, kCosine };
const std::vector<std::string>& schedule_names();  // "constant", "linear", "cosine"
Schedule parse_schedule(const std::string& s);
std::string schedule_name(Schedule s);

double learning_rate(int64_t step, double peak, int64_t warmup_steps, int64_t total_steps, Schedule schedule);

}  // namespace performer
