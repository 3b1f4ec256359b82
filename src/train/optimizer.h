// AdamW (decoupled weight decay), written out so its state is plain named tensors that checkpoints
// store and restore exactly (and identically on LibTorch 1.x and 2.x):
//   m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2            (t = step count after this step)
//   p <- p - lr wd p                (only parameters with >= 2 dimensions: weight matrices, embeddings)
//   p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace performer {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-9, weight_decay = 0.1;
};

class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWOptions options);
  void zero_grad();
  void step(double lr);

  int64_t step_count() const { return step_; }
  void set_step_count(int64_t s) { step_ = s; }
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }
  // First and second moments by parameter name (created zero-filled with the optimizer).
  std::map<std::string, at::Tensor>& exp_avg() { return exp_avg_; }
  std::map<std::string, at::Tensor>& exp_avg_sq() { return exp_avg_sq_; }

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  AdamWOptions o_;
  std::map<std::string, at::Tensor> exp_avg_, exp_avg_sq_;
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
