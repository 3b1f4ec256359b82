#include "model/kernels.h"

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "util/error.h"
#include "util/hash.h"
#include "util/names.h"

namespace performer {

const std::vector<std::string>& row_norms_names() {
  static const std::vector<std::string> names{"chi", "sqrt-d"};
  return names;
}

RowNorms parse_row_norms(const std::string& s) { return parse_name<RowNorms>(s, row_norms_names(), "row norms"); }

std::string row_norms_name(RowNorms r) { return name_of(r, row_norms_names()); }

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

at::ScalarType compute_type(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

}  // namespace

at::Tensor padding_rows(const at::Tensor& key_mask) {
  return ~key_mask.view({key_mask.size(0), 1, key_mask.size(1), 1});
}

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
  return f.masked_fill(padding_rows(key_mask), 0.0);
}

at::Tensor softmax_logits(const at::Tensor& x, const at::Tensor& W) {
  const auto compute = compute_type(x);
  const double scale = std::pow(static_cast<double>(x.size(-1)), -0.25);
  at::Tensor xs = x.to(compute) * scale;                                // x' = x d^-1/4
  at::Tensor wx = at::matmul(xs, W.to(compute).t());                    // W x'        [B,H,L,m]
  return wx - xs.pow(2).sum(-1, /*keepdim=*/true) * 0.5;                // - |x'|^2/2
}

FeatureMaps softmax_features(const at::Tensor& q, const at::Tensor& k, const at::Tensor& W, const at::Tensor& key_mask,
                             bool causal, int64_t chunk) {
  if (causal && chunk < 1) throw Error("causal attention: chunk must be positive");
  const double inv_sqrt_m = 1.0 / std::sqrt(static_cast<double>(W.size(0)));
  at::Tensor a = softmax_logits(q, W);  // [B,H,L,m]
  at::Tensor l = softmax_logits(k, W);
  if (key_mask.defined()) l = l.masked_fill(padding_rows(key_mask), -INFINITY);  // before exp: exp(-inf) = 0
  FeatureMaps f;
  at::Tensor s;  // key shift per position [B,H,L,m] (causal) or [B,H,1,m]
  {
    at::NoGradGuard no_grad;
    if (!causal) {
      s = std::get<0>(l.max(2, /*keepdim=*/true));                        // s_r = max_j l_jr   [B,H,1,m]
    } else {
      const int64_t B = l.size(0), H = l.size(1), L = l.size(2), m = l.size(3);
      const int64_t C = (L + chunk - 1) / chunk;
      at::Tensor lp = l.detach();
      if (C * chunk > L) lp = at::cat({lp, at::full({B, H, C * chunk - L, m}, -INFINITY, lp.options())}, 2);
      at::Tensor per_chunk = std::get<0>(lp.view({B, H, C, chunk, m}).max(3));   // [B,H,C,m]
      f.chunk_log_scale = std::get<0>(per_chunk.cummax(2));                      // s_c: running max over chunks
      // Chunks before the first real key have no maximum yet. They take the first finite shift (the smallest,
      // as s_c never decreases), so exp(s_{c-1} - s_c) <= 1 still holds everywhere; 0 with no real key at all.
      at::Tensor missing = at::isinf(f.chunk_log_scale);
      at::Tensor first = f.chunk_log_scale.masked_fill(missing, INFINITY).amin(2, /*keepdim=*/true);
      first.masked_fill_(at::isinf(first), 0.0);
      f.chunk_log_scale = at::where(missing, first.expand_as(f.chunk_log_scale), f.chunk_log_scale);
      f.chunk = chunk;
      s = f.chunk_log_scale.repeat_interleave(chunk, 2).narrow(2, 0, L);         // [B,H,L,m]
    }
    if (!causal) s.masked_fill_(at::isinf(s), 0.0);  // no real key at all
  }
  at::Tensor shifted_q = a + s;  // a_ir + s_r: the key shift moved into the query
  at::Tensor t;
  {
    at::NoGradGuard no_grad;
    t = std::get<0>(shifted_q.max(-1, /*keepdim=*/true));                 // t_i = max_r (a_ir + s_r)
  }
  f.q = at::exp(shifted_q - t) * inv_sqrt_m;
  f.k = at::exp(l - s) * inv_sqrt_m;
  return f;
}

FeatureMaps relu_features(const at::Tensor& q, const at::Tensor& k, const at::Tensor& W, double eps,
                          const at::Tensor& key_mask) {
  auto phi = [&](const at::Tensor& x) {
    at::Tensor xc = x.to(compute_type(x));
    if (!W.defined()) return at::relu(xc) + eps;
    return at::relu(at::matmul(xc, W.to(xc.scalar_type()).t())) / std::sqrt(static_cast<double>(W.size(0))) + eps;
  };
  FeatureMaps f;
  f.q = phi(q);
  f.k = mask_rows(phi(k), key_mask);
  return f;
}

}  // namespace performer
