#include "train/replicas.h"

#include <torch/torch.h>

#include <cmath>
#include <string_view>

#include "util/error.h"
#include "util/hash.h"

namespace performer {

NamedTensors replicated_state(Encoder& model, Optimizer& optimizer) {
  NamedTensors out;
  for (auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value());
  for (auto& b : model->named_buffers()) out.emplace_back("buffer:" + b.key(), b.value());
  for (auto& [name, t] : optimizer.exp_avg()) out.emplace_back("exp_avg:" + name, t);  // std::map: sorted by name
  for (auto& [name, t] : optimizer.exp_avg_sq()) out.emplace_back("exp_avg_sq:" + name, t);
  return out;
}

namespace {
// The bits of a tensor as integers of its element size: equal exactly when the bytes are (-0.0 is not 0.0,
// and a NaN equals the same NaN), as the fingerprint sees them.
at::Tensor bits(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  switch (c.element_size()) {
    case 8: return c.view(torch::kLong);
    case 4: return c.view(torch::kInt);
    case 2: return c.view(torch::kShort);
    default: return c.view(torch::kByte);
  }
}
}  // namespace

Divergence take_rank0_state(Communicator& comm, const NamedTensors& state) {
  Divergence d;
  if (!comm.distributed()) return d;
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : state) {
    ++d.tensors;
    at::Tensor theirs = t.detach().clone();
    comm.broadcast(theirs);
    at::Tensor mine = t.detach();
    if (torch::equal(bits(mine), bits(theirs))) continue;
    ++d.differing;
    const at::Tensor a = mine.to(torch::kDouble), b = theirs.to(torch::kDouble);
    const double norm = b.norm().item<double>(), diff = (a - b).norm().item<double>();
    double rel = norm > 0 ? diff / norm : (diff > 0 ? INFINITY : 0);
    if (std::isnan(rel)) rel = INFINITY;  // a NaN on one side: as far apart as can be
    if (rel >= d.max_relative || d.worst.empty()) {
      d.max_relative = rel;
      d.worst = name;
    }
    mine.copy_(theirs);
  }
  return d;
}

uint64_t state_fingerprint(const NamedTensors& state) {
  uint64_t h = 0;
  for (const auto& [name, t] : state) {
    const at::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const std::string_view bytes(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
    h = hash64(bytes, h ^ hash64(name));
  }
  return h;
}

void take_rank0_features(Communicator& comm, Encoder& model) {
  if (!comm.distributed()) return;
  torch::NoGradGuard no_grad;
  for (auto& b : model->named_buffers()) {
    const std::string& name = b.key();
    static const std::string kSuffix = "projection";
    if (name.size() < kSuffix.size() || name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) continue;
    at::Tensor t = b.value();
    if (t.numel() > 0) comm.broadcast(t);
  }
}

bool same_on_every_rank(Communicator& comm, uint64_t fingerprint) {
  if (!comm.distributed()) return true;
  // Two 32-bit halves: doubles carry them exactly. Equal everywhere exactly when min == max for both.
  std::vector<double> lo{static_cast<double>(fingerprint >> 32), static_cast<double>(fingerprint & 0xffffffffULL)};
  std::vector<double> hi = lo;
  comm.min(lo);
  comm.max(hi);
  return lo == hi;
}

}  // namespace performer
