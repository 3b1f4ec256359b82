#include "analysis/aa_attention.h"

#include <torch/torch.h>

#include <cmath>

#include "util/error.h"

namespace performer {

namespace {
constexpr int kAa = Alphabet::kStandardAminoAcids;
}

AaAttention::AaAttention(int64_t heads)
    : heads_(heads), num_(static_cast<size_t>(heads * kAa * kAa), 0.0), den_(num_.size(), 0.0) {}

void AaAttention::add(const at::Tensor& attention, const std::vector<Token>& residues) {
  const auto n = static_cast<int64_t>(residues.size());
  if (attention.dim() != 3 || attention.size(0) != heads_ || attention.size(1) != n || attention.size(2) != n)
    throw Error("amino-acid attention: expected [" + std::to_string(heads_) + ", n, n] for n = " + std::to_string(n));
  // One-hot types O [n, 20] (zero rows for non-standard residues): num += O^T A O per head, den += O^T (1/n) O.
  at::Tensor onehot = torch::zeros({n, kAa}, torch::kDouble);
  for (int64_t i = 0; i < n; ++i)
    if (Alphabet::is_standard(residues[static_cast<size_t>(i)])) onehot[i][residues[static_cast<size_t>(i)] - Alphabet::kFirstResidue] = 1.0;
  at::Tensor A = attention.to(torch::kDouble).cpu();
  at::Tensor num = at::matmul(at::matmul(onehot.t().unsqueeze(0), A), onehot.unsqueeze(0));  // [H,20,20]
  at::Tensor counts = onehot.sum(0);                                                          // [20]
  at::Tensor den = at::outer(counts, counts) / static_cast<double>(n);                        // [20,20]
  auto pn = num.contiguous();
  const double* np = pn.data_ptr<double>();
  const double* dp = den.contiguous().data_ptr<double>();
  for (int64_t h = 0; h < heads_; ++h)
    for (int64_t k = 0; k < kAa * kAa; ++k) {
      num_[static_cast<size_t>(h * kAa * kAa + k)] += np[h * kAa * kAa + k];
      den_[static_cast<size_t>(h * kAa * kAa + k)] += dp[k];
    }
}

std::vector<double> AaAttention::matrix(int64_t head) const {
  std::vector<double> out(static_cast<size_t>(kAa * kAa));
  const size_t base = static_cast<size_t>(head * kAa * kAa);
  for (int a = 0; a < kAa; ++a)
    for (int b = 0; b < kAa; ++b) {
      const double n = num_[base + static_cast<size_t>(a * kAa + b)] + num_[base + static_cast<size_t>(b * kAa + a)];
      const double d = den_[base + static_cast<size_t>(a * kAa + b)] + den_[base + static_cast<size_t>(b * kAa + a)];
      out[static_cast<size_t>(a * kAa + b)] = d > 0 ? n / d : std::nan("");
    }
  return out;
}

}  // namespace performer
