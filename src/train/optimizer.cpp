#include "train/optimizer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"
#include "util/names.h"

namespace performer {

const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> names{"adamw", "muon"};
  return names;
}

OptimizerKind parse_optimizer(const std::string& s) { return parse_name<OptimizerKind>(s, optimizer_names(), "train.optimizer"); }

std::string optimizer_name(OptimizerKind k) { return name_of(k, optimizer_names()); }

bool muon_parameter(const std::string& name, const at::Tensor& p) {
  const std::string prefix = "layers.", suffix = ".weight";
  return p.dim() == 2 && name.size() > prefix.size() + suffix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

at::Tensor newton_schulz5(const at::Tensor& g, at::ScalarType dtype) {
  constexpr double a = 3.4445, b = -4.7750, c = 2.0315;
  constexpr int kSteps = 5;
  TORCH_CHECK(g.dim() == 2 || g.dim() == 3, "newton_schulz5: a matrix or a batch of them, got ", g.dim(), " dimensions");
  const at::ScalarType wide = g.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  if (dtype == at::ScalarType::Undefined) dtype = wide;
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16,
              "newton_schulz5: iterations in float32, float64 or bf16, not ", dtype);
  at::Tensor x = (g.dim() == 2 ? g.unsqueeze(0) : g).to(wide);  // [n, r, c]
  const bool tall = x.size(1) > x.size(2);
  if (tall) x = x.transpose(1, 2);
  const at::Tensor norms = at::linalg_vector_norm(x, 2, {1, 2}, /*keepdim=*/true);
  x = (x / (norms + 1e-7)).to(dtype).contiguous();     // [n, r, c], r <= c, every singular value <= 1
  for (int i = 0; i < kSteps; ++i) {
    at::Tensor gram = at::bmm(x, x.transpose(1, 2));   // A = X X^T, [n, r, r]
    at::Tensor poly = at::baddbmm(gram, gram, gram, b, c);  // b A + c A A
    x = at::baddbmm(x, poly, x, a, 1.0);               // a X + (b A + c A^2) X
  }
  x = x.to(wide);
  if (tall) x = x.transpose(1, 2);
  return (g.dim() == 2 ? x.squeeze(0) : x).contiguous();
}

Optimizer::Optimizer(std::vector<std::pair<std::string, at::Tensor>> params, OptimizerOptions options)
    : params_(std::move(params)), o_(options) {
  for (auto& [name, p] : params_) {
    exp_avg_[name] = torch::zeros_like(p, at::MemoryFormat::Contiguous);
    exp_avg_sq_[name] = torch::zeros_like(p, at::MemoryFormat::Contiguous);
    muon_.push_back(o_.kind == OptimizerKind::kMuon && muon_parameter(name, p));
  }
}

int64_t Optimizer::muon_parameters() const { return std::count(muon_.begin(), muon_.end(), true); }

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

void Optimizer::step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(step_));
  // The Muon matrices by shape, a tall one counted as its transpose: {rows, cols} with rows <= cols.
  std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> muon_by_shape;
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& [name, p] = params_[i];
    if (!p.grad().defined()) continue;
    const at::Tensor& g = p.grad();
    at::Tensor& m = exp_avg_.at(name);
    if (muon_[i]) {
      m.mul_(o_.muon_momentum).add_(g);
      muon_by_shape[{std::min(p.size(0), p.size(1)), std::max(p.size(0), p.size(1))}].push_back(i);
      continue;
    }
    at::Tensor& v = exp_avg_sq_.at(name);
    m.mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
    v.mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
    if (o_.weight_decay > 0 && p.dim() >= 2) p.mul_(1.0 - lr * o_.weight_decay);
    at::Tensor denom = (v / bc2).sqrt_().add_(o_.eps);
    p.addcdiv_(m, denom, -lr / bc1);
  }
  for (const auto& [shape, members] : muon_by_shape) {
    const auto [rows, cols] = shape;
    const at::Tensor& first = params_[members.front()].second;
    // u = g + mu m (Nesterov), written straight into one [n, rows, cols] batch (a tall matrix transposed).
    at::Tensor nesterov = at::empty({static_cast<int64_t>(members.size()), rows, cols}, first.options());
    // A view of batch entry j in parameter j's own layout (transposed back for a tall one).
    const auto entry = [&](const at::Tensor& batch, size_t j) {
      const at::Tensor e = batch[static_cast<int64_t>(j)];
      const at::Tensor& p = params_[members[j]].second;
      return p.size(0) > p.size(1) ? e.t() : e;
    };
    for (size_t j = 0; j < members.size(); ++j) {
      const auto& [name, p] = params_[members[j]];
      at::Tensor slot = entry(nesterov, j);
      at::add_out(slot, p.grad(), exp_avg_.at(name), o_.muon_momentum);
    }
    const at::Tensor o = newton_schulz5(nesterov, o_.newton_schulz_dtype);  // [n, rows, cols]
    const double scale = 0.2 * std::sqrt(static_cast<double>(cols));      // sqrt(max(rows, cols))
    for (size_t j = 0; j < members.size(); ++j) {
      at::Tensor& p = params_[members[j]].second;
      if (o_.weight_decay > 0) p.mul_(1.0 - lr * o_.weight_decay);
      p.add_(entry(o, j).to(p.scalar_type()), -lr * scale);
    }
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
