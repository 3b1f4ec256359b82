#include "train/replicas.h"

#include <torch/torch.h>

#include <cmath>
#include <string_view>

#include "util/error.h"
#include "util/hash.h"

namespace performer {

NamedTensors replicated_state(Encoder& model, AdamW& optimizer) {
  NamedTensors out;
  for (auto& p : model->named_parameters()) out.emplace_back(p.key(), p.value());
  for (auto& b : model->named_buffers()) out.emplace_back("buffer:" + b.key(), b.value());
  for (auto& [name, t] : optimizer.exp_avg()) out.emplace_back("exp_avg:" + name, t);  // std::map: sorted by name
  for (auto& [name, t] : optimizer.exp_avg_sq()) out.emplace_back("exp_avg_sq:" + name, t);
  return out;
}

Divergence take_rank0_state(Communicator& comm, const NamedTensors& state) {
  Divergence d;
  if (!comm.distributed()) return d;
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : state) {
    ++d.tensors;
    at::Tensor theirs = t.detach().clone();
    comm.broadcast(theirs);
    at::Tensor mine = t.detach();
    if (torch::equal(mine, theirs)) continue;
    ++d.differing;
    const at::Tensor a = mine.to(torch::kDouble), b = theirs.to(torch::kDouble);
    const double norm = b.norm().item<double>(), diff = (a - b).norm().item<double>();
    const double rel = norm > 0 ? diff / norm : (diff > 0 ? INFINITY : 0);
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
