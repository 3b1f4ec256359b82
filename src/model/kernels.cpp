#include "model/kernels.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "util/error.h"
#include "util/hash.h"

namespace performer {

namespace {

// Standard normal draws (Box-Muller) from the project's RNG, so draws are identical everywhere.
std::vector<double> normals(size_t n, Rng& rng) {
  std::vector<double> out(n);
  for (size_t i = 0; i < n; i += 2) {
    double u1 = rng.uniform(), u2 = rng.uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    double r = std::sqrt(-2.0 * std::log(u1)), t = 2.0 * M_PI * u2;
    out[i] = r * std::cos(t);
    if (i + 1 < n) out[i + 1] = r * std::sin(t);
  }
  return out;
}

// Modified Gram-Schmidt on the rows of a d x d block (row-major), in place: orthonormal rows.
void orthonormalize_rows(std::vector<double>& a, int64_t d) {
  for (int64_t i = 0; i < d; ++i) {
    double* ri = &a[static_cast<size_t>(i * d)];
    for (int pass = 0; pass < 2; ++pass)  // re-orthogonalize once for accuracy
      for (int64_t j = 0; j < i; ++j) {
        const double* rj = &a[static_cast<size_t>(j * d)];
        double dot = 0;
        for (int64_t k = 0; k < d; ++k) dot += ri[k] * rj[k];
        for (int64_t k = 0; k < d; ++k) ri[k] -= dot * rj[k];
      }
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) norm += ri[k] * ri[k];
    norm = std::sqrt(norm);
    for (int64_t k = 0; k < d; ++k) ri[k] /= norm;
  }
}

at::Tensor shifted_exp(const at::Tensor& x, const at::Tensor& W, bool is_query, const at::Tensor& key_mask) {
  // x [B,H,L,d] -> features [B,H,L,m], computed in float32 at least.
  const auto compute = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const int64_t d = x.size(-1), m = W.size(0);
  const double scale = std::pow(static_cast<double>(d), -0.25);
  at::Tensor xs = x.to(compute) * scale;                               // x' = x d^-1/4
  at::Tensor wx = at::matmul(xs, W.to(compute).t());                   // W x'        [B,H,L,m]
  at::Tensor half_norm = xs.pow(2).sum(-1, /*keepdim=*/true) * 0.5;    // |x'|^2 / 2  [B,H,L,1]
  at::Tensor logits = wx - half_norm;
  at::Tensor stab;
  {
    at::NoGradGuard no_grad;
    if (is_query) {
      stab = std::get<0>(logits.max(-1, true));                        // [B,H,L,1]
    } else {
      at::Tensor l = logits;
      if (key_mask.defined()) l = l.masked_fill(~key_mask.view({key_mask.size(0), 1, key_mask.size(1), 1}), -INFINITY);
      stab = std::get<0>(l.flatten(-2).max(-1, true)).unsqueeze(-1);   // [B,H,1,1]
    }
  }
  at::Tensor f = at::exp(logits - stab.detach()) / std::sqrt(static_cast<double>(m));
  if (!is_query) f = mask_rows(f, key_mask);
  return f;
}

}  // namespace

at::Tensor orthogonal_gaussian_projection(int64_t m, int64_t d, RowNorms norms, uint64_t seed) {
  if (m < 1 || d < 1) throw Error("random features: m and d must be positive");
  Rng rng(seed);
  std::vector<double> rows;
  rows.reserve(static_cast<size_t>(m * d));
  while (static_cast<int64_t>(rows.size()) < m * d) {
    std::vector<double> block = normals(static_cast<size_t>(d * d), rng);
    orthonormalize_rows(block, d);
    const int64_t take = std::min<int64_t>(d, m - static_cast<int64_t>(rows.size()) / d);
    rows.insert(rows.end(), block.begin(), block.begin() + take * d);
  }
  at::Tensor W = torch::from_blob(rows.data(), {m, d}, torch::kDouble).clone();
  at::Tensor scale;
  if (norms == RowNorms::kChi) {
    std::vector<double> g = normals(static_cast<size_t>(m * d), rng);
    scale = torch::from_blob(g.data(), {m, d}, torch::kDouble).norm(2, {1}, true);  // chi(d) draws
  } else {
    scale = torch::full({m, 1}, std::sqrt(static_cast<double>(d)), torch::kDouble);
  }
  return W * scale;
}

at::Tensor gaussian_projection(int64_t m, int64_t d, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> g = normals(static_cast<size_t>(m * d), rng);
  return torch::from_blob(g.data(), {m, d}, torch::kDouble).clone();
}

at::Tensor mask_rows(const at::Tensor& f, const at::Tensor& key_mask) {
  if (!key_mask.defined()) return f;
  return f * key_mask.view({key_mask.size(0), 1, key_mask.size(1), 1}).to(f.scalar_type());
}

at::Tensor softmax_features_query(const at::Tensor& x, const at::Tensor& W) {
  return shifted_exp(x, W, /*is_query=*/true, at::Tensor());
}

at::Tensor softmax_features_key(const at::Tensor& x, const at::Tensor& W, const at::Tensor& key_mask) {
  return shifted_exp(x, W, /*is_query=*/false, key_mask);
}

at::Tensor relu_features(const at::Tensor& x, const at::Tensor& W, double eps, const at::Tensor& key_mask) {
  const auto compute = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor xc = x.to(compute);
  at::Tensor f;
  if (W.defined())
    f = at::relu(at::matmul(xc, W.to(compute).t())) / std::sqrt(static_cast<double>(W.size(0))) + eps;
  else
    f = at::relu(xc) + eps;
  return mask_rows(f, key_mask);
}

}  // namespace performer
