#include "analysis/contacts.h"

#include <torch/torch.h>

#include <cmath>

#include "util/error.h"

namespace performer {

const char* contact_range_name(ContactRange r) {
  switch (r) {
    case ContactRange::kShort: return "short";
    case ContactRange::kMedium: return "medium";
    case ContactRange::kLong: return "long";
  }
  return "?";
}

bool in_contact_range(ContactRange r, int64_t separation) {
  constexpr int64_t kMediumFrom = 12, kLongFrom = 24;
  switch (r) {
    case ContactRange::kShort: return separation >= kMinSeparation && separation < kMediumFrom;
    case ContactRange::kMedium: return separation >= kMediumFrom && separation < kLongFrom;
    case ContactRange::kLong: return separation >= kLongFrom;
  }
  return false;
}

at::Tensor symmetrize(const at::Tensor& maps) { return maps + maps.transpose(-1, -2); }

at::Tensor apc(const at::Tensor& maps) {
  const at::Tensor row = maps.sum(-1, true);                  // [C, n, 1]
  const at::Tensor col = maps.sum(-2, true);                  // [C, 1, n]
  const at::Tensor total = maps.sum({-1, -2}, true);          // [C, 1, 1]
  return maps - row * col / total;
}

at::Tensor contact_features(const at::Tensor& maps) {
  TORCH_CHECK(maps.dim() == 3 && maps.size(1) == maps.size(2), "contact_features: maps must be [C, n, n]");
  return apc(symmetrize(maps.to(torch::kFloat)));
}

ContactTruth contacts_from_points(const std::vector<std::array<double, 3>>& points, const std::vector<uint8_t>& known,
                                  double cutoff) {
  if (points.size() != known.size()) throw Error("contacts_from_points: points and known differ in length");
  ContactTruth t;
  t.n = static_cast<int64_t>(points.size());
  t.known = known;
  t.contact.assign(static_cast<size_t>(t.n * t.n), 0);
  for (int64_t i = 0; i < t.n; ++i) {
    if (!known[i]) continue;
    for (int64_t j = i + 1; j < t.n; ++j) {
      if (!known[j]) continue;
      double d2 = 0;
      for (int k = 0; k < 3; ++k) d2 += (points[i][k] - points[j][k]) * (points[i][k] - points[j][k]);
      const uint8_t c = std::sqrt(d2) < cutoff ? 1 : 0;
      t.contact[i * t.n + j] = t.contact[j * t.n + i] = c;
    }
  }
  return t;
}

ScoredPairs scored_pairs(const ContactTruth& truth) {
  ScoredPairs p;
  for (int64_t i = 0; i < truth.n; ++i) {
    if (!truth.known[i]) continue;
    for (int64_t j = i + kMinSeparation; j < truth.n; ++j) {
      if (!truth.known[j]) continue;
      p.i.push_back(static_cast<int32_t>(i));
      p.j.push_back(static_cast<int32_t>(j));
    }
  }
  return p;
}

std::vector<double> pair_features(const at::Tensor& features, const ScoredPairs& pairs) {
  TORCH_CHECK(features.dim() == 3, "pair_features: features must be [C, n, n]");
  const at::Tensor f = features.to(torch::kDouble).contiguous();
  const int64_t C = f.size(0), n = f.size(1);
  const double* x = f.data_ptr<double>();
  std::vector<double> out(pairs.size() * static_cast<size_t>(C));
  for (size_t p = 0; p < pairs.size(); ++p)
    for (int64_t c = 0; c < C; ++c) out[p * C + c] = x[(c * n + pairs.i[p]) * n + pairs.j[p]];
  return out;
}

}  // namespace performer
