#include "analysis/aa_attention.h"

#include <torch/torch.h>

#include <cmath>

#include "analysis/substitution.h"
#include "util/error.h"
#include "util/hash.h"

namespace performer {

namespace {

constexpr int kAa = Alphabet::kStandardAminoAcids;

void check_maps(const at::Tensor& attention, int64_t heads, size_t n, const char* what) {
  const auto len = static_cast<int64_t>(n);
  if (attention.dim() != 3 || attention.size(0) != heads || attention.size(1) != len || attention.size(2) != len)
    throw Error(std::string(what) + ": expected [" + std::to_string(heads) + ", n, n] for n = " + std::to_string(n));
}

// One-hot amino-acid types O [n, 20] (zero rows for non-standard residues), float64.
at::Tensor one_hot_types(const std::vector<Token>& residues) {
  const auto n = static_cast<int64_t>(residues.size());
  at::Tensor onehot = torch::zeros({n, kAa}, torch::kDouble);
  auto o = onehot.accessor<double, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const Token t = residues[static_cast<size_t>(i)];
    if (Alphabet::is_standard(t)) o[i][t - Alphabet::kFirstResidue] = 1.0;
  }
  return onehot;
}

}  // namespace

PairwiseAttention::PairwiseAttention(int64_t heads)
    : heads_(heads), num_(static_cast<size_t>(heads * kAa * kAa), 0.0), den_(num_.size(), 0.0) {}

void PairwiseAttention::add(const at::Tensor& attention, const std::vector<Token>& residues) {
  check_maps(attention, heads_, residues.size(), "pairwise amino-acid attention");
  const auto n = static_cast<int64_t>(residues.size());
  // num += O^T A O per head, den += O^T (1/n) O.
  at::Tensor onehot = one_hot_types(residues);
  at::Tensor A = attention.to(torch::kDouble).cpu();
  at::Tensor num = at::matmul(at::matmul(onehot.t().unsqueeze(0), A), onehot.unsqueeze(0)).contiguous();  // [H,20,20]
  at::Tensor counts = onehot.sum(0);                                                                     // [20]
  at::Tensor den = (at::outer(counts, counts) / static_cast<double>(n)).contiguous();                   // [20,20]
  const double* np = num.data_ptr<double>();
  const double* dp = den.data_ptr<double>();
  for (int64_t h = 0; h < heads_; ++h)
    for (int64_t k = 0; k < kAa * kAa; ++k) {
      num_[static_cast<size_t>(h * kAa * kAa + k)] += np[h * kAa * kAa + k];
      den_[static_cast<size_t>(h * kAa * kAa + k)] += dp[k];
    }
}

std::vector<double> PairwiseAttention::matrix(int64_t head) const {
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

TargetShares::TargetShares(int64_t heads, double threshold)
    : heads_(heads), threshold_(threshold), counts_(static_cast<size_t>(heads * kAa), 0.0) {}

void TargetShares::add(const at::Tensor& attention, const std::vector<Token>& residues, int64_t first_head) {
  const int64_t h = attention.dim() == 3 ? attention.size(0) : 0;
  if (first_head < 0 || first_head + h > heads_) throw Error("target shares: heads out of range");
  check_maps(attention, h, residues.size(), "target shares");
  // Confident links per target position [h, n], then per target type [h, 20].
  at::Tensor per_target = (attention.cpu() > threshold_).sum(1).to(torch::kDouble);
  at::Tensor per_type = at::matmul(per_target, one_hot_types(residues)).contiguous();
  const double* p = per_type.data_ptr<double>();
  for (int64_t i = 0; i < h * kAa; ++i) counts_[static_cast<size_t>(first_head * kAa + i)] += p[i];
}

std::vector<double> TargetShares::shares() const {
  std::vector<double> out(counts_.size(), std::nan(""));
  for (int64_t h = 0; h < heads_; ++h) {
    double total = 0;
    for (int b = 0; b < kAa; ++b) total += counts_[static_cast<size_t>(h * kAa + b)];
    if (total > 0)
      for (int b = 0; b < kAa; ++b)
        out[static_cast<size_t>(h * kAa + b)] = counts_[static_cast<size_t>(h * kAa + b)] / total;
  }
  return out;
}

int64_t TargetShares::heads_used() const {
  const std::vector<double> s = shares();
  int64_t used = 0;
  for (int64_t h = 0; h < heads_; ++h) used += !std::isnan(s[static_cast<size_t>(h * kAa)]);
  return used;
}

std::vector<double> TargetShares::similarity() const {
  const std::vector<double> s = shares();
  std::vector<std::vector<double>> per_aa(kAa);  // shares across the heads that qualify
  for (int64_t h = 0; h < heads_; ++h) {
    if (std::isnan(s[static_cast<size_t>(h * kAa)])) continue;
    for (int b = 0; b < kAa; ++b) per_aa[static_cast<size_t>(b)].push_back(s[static_cast<size_t>(h * kAa + b)]);
  }
  std::vector<double> out(static_cast<size_t>(kAa * kAa), std::nan(""));
  if (per_aa[0].size() < 3) return out;
  for (int a = 0; a < kAa; ++a)
    for (int b = 0; b < kAa; ++b)
      out[static_cast<size_t>(a * kAa + b)] = pearson(per_aa[static_cast<size_t>(a)], per_aa[static_cast<size_t>(b)]);
  return out;
}

DistanceProfile::DistanceProfile(int64_t heads, int64_t max_length)
    : heads_(heads),
      max_length_(max_length),
      sum_(torch::zeros({heads, max_length}, torch::kDouble)),
      count_(torch::zeros({max_length}, torch::kDouble)) {}

void DistanceProfile::add(const at::Tensor& attention) {
  if (attention.dim() != 3 || attention.size(0) != heads_ || attention.size(1) != attention.size(2) ||
      attention.size(1) > max_length_)
    throw Error("distance profile: expected [" + std::to_string(heads_) + ", n, n] with n <= " + std::to_string(max_length_));
  const int64_t n = attention.size(1);
  at::Tensor A = attention.to(torch::kDouble).cpu();
  at::Tensor idx = torch::arange(n, torch::kLong);
  at::Tensor dist = (idx.unsqueeze(1) - idx.unsqueeze(0)).abs().reshape({-1});  // [n*n]
  sum_.index_add_(1, dist, A.reshape({heads_, n * n}));
  count_.index_add_(0, dist, torch::ones({n * n}, torch::kDouble));
}

at::Tensor DistanceProfile::profile() const { return sum_ / count_.clamp_min(1.0); }

at::Tensor DistanceProfile::attention(int64_t n) const {
  if (n > max_length_) throw Error("distance profile: length " + std::to_string(n) + " exceeds " + std::to_string(max_length_));
  at::Tensor idx = torch::arange(n, torch::kLong);
  at::Tensor dist = (idx.unsqueeze(1) - idx.unsqueeze(0)).abs();               // [n, n]
  at::Tensor A = profile().index_select(1, dist.reshape({-1})).view({heads_, n, n});
  return (A / A.sum(-1, true).clamp_min(1e-300)).to(torch::kFloat);
}

std::vector<Token> shuffled_residues(const std::vector<Token>& residues, uint64_t seed) {
  std::vector<Token> out = residues;
  Rng rng(seed);
  shuffle(out.begin(), out.end(), rng);
  return out;
}

}  // namespace performer
