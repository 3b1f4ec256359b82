#include "train/optimizer.h"

#include <torch/torch.h>

#include <cmath>

#include "util/error.h"
#include "util/names.h"

namespace performer {

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWOptions options)
    : params_(std::move(params)), o_(options) {
  for (auto& [name, p] : params_) {
    exp_avg_[name] = torch::zeros_like(p, at::MemoryFormat::Contiguous);
    exp_avg_sq_[name] = torch::zeros_like(p, at::MemoryFormat::Contiguous);
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(step_));
  for (auto& [name, p] : params_) {
    if (!p.grad().defined()) continue;
    const at::Tensor& g = p.grad();
    at::Tensor& m = exp_avg_.at(name);
    at::Tensor& v = exp_avg_sq_.at(name);
    m.mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
    v.mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
    if (o_.weight_decay > 0 && p.dim() >= 2) p.mul_(1.0 - lr * o_.weight_decay);
    at::Tensor denom = (v / bc2).sqrt_().add_(o_.eps);
    p.addcdiv_(m, denom, -lr / bc1);
  }
}

double clip_grad_norm(const std::vector<std::pair<std::string, at::Tensor>>& params, double clip) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (auto& [name, p] : params)
    if (p.grad().defined()) norms.push_back(p.grad().norm(2).to(at::kDouble));
  if (norms.empty()) return 0.0;
  const double total = at::stack(norms).norm(2).item<double>();
  if (clip > 0 && std::isfinite(total) && total > clip) {
    const double scale = clip / (total + 1e-6);
    for (auto& [name, p] : params)
      if (p.grad().defined()) p.mutable_grad().mul_(scale);
  }
  return total;
}

const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> names{"constant", "linear", "cosine"};
  return names;
}

Schedule parse_schedule(const std::string& s) { return parse_name<Schedule>(s, schedule_names(), "train.schedule"); }

std::string schedule_name(Schedule s) { return name_of(s, schedule_names()); }

double learning_rate(int64_t step, double peak, int64_t warmup_steps, int64_t total_steps, Schedule schedule) {
  if (warmup_steps > 0 && step < warmup_steps) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (schedule == Schedule::kConstant) return peak;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double t = std::min(1.0, static_cast<double>(step - warmup_steps) / span);
  if (schedule == Schedule::kLinear) return peak * (1.0 - t);
  return peak * 0.5 * (1.0 + std::cos(M_PI * t));  // cosine
}

}  // namespace performer
