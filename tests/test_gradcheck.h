// Central finite differences against autograd, for the tests of the attention math (double precision).
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace performer::testing {

// Largest |autograd gradient - central difference (step h)| over every element of `inputs`, for the scalar
// loss(inputs). The inputs are not modified.
inline double worst_gradient_error(const std::function<at::Tensor(const std::vector<at::Tensor>&)>& loss,
                                   const std::vector<at::Tensor>& inputs, double h = 1e-6) {
  std::vector<at::Tensor> x;
  for (const auto& t : inputs) x.push_back(t.detach().clone().requires_grad_());
  const auto g = torch::autograd::grad({loss(x)}, x);
  double worst = 0;
  for (size_t which = 0; which < inputs.size(); ++which)
    for (int64_t i = 0; i < inputs[which].numel(); ++i) {
      auto at_delta = [&](double delta) {
        std::vector<at::Tensor> in;
        for (const auto& t : inputs) in.push_back(t.detach().clone());
        in[which].reshape(-1)[i] += delta;
        return loss(in).item<double>();
      };
      const double numeric = (at_delta(h) - at_delta(-h)) / (2 * h);
      worst = std::max(worst, std::abs(g[which].reshape(-1)[i].item<double>() - numeric));
    }
  return worst;
}

}  // namespace performer::testing
