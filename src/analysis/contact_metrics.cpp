#include "analysis/contact_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "util/error.h"
#include "util/hash.h"

namespace performer {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}  // namespace

double top_k_precision(const std::vector<double>& scores, const std::vector<uint8_t>& labels, int64_t k) {
  if (scores.size() != labels.size()) throw Error("top_k_precision: scores and labels differ in length");
  if (scores.empty() || k <= 0) return kNaN;
  // NaN scores rank last, as one tied group (a NaN compares unequal to everything, which would break both
  // the sort's ordering and the grouping below).
  const auto key = [&](size_t i) { return std::isnan(scores[i]) ? -std::numeric_limits<double>::infinity() : scores[i]; };
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) > key(b); });
  const auto take = std::min<int64_t>(k, static_cast<int64_t>(scores.size()));
  double hits = 0;
  int64_t taken = 0;
  for (size_t g = 0; g < order.size() && taken < take;) {
    size_t end = g;  // the group of scores equal to scores[order[g]]
    int64_t positives = 0;
    while (end < order.size() && key(order[end]) == key(order[g])) positives += labels[order[end++]];
    const auto size = static_cast<int64_t>(end - g);
    const int64_t used = std::min(size, take - taken);
    hits += static_cast<double>(positives) * static_cast<double>(used) / static_cast<double>(size);
    taken += used;
    g = end;
  }
  return hits / static_cast<double>(take);
}

ProteinScore score_ranking(const ContactTruth& truth, const ScoredPairs& pairs, const std::vector<double>& scores) {
  if (scores.size() != pairs.size()) throw Error("score_ranking: one score per scored pair expected");
  ProteinScore out;
  for (ContactRange r : kAllContactRanges) {
    std::vector<double> s;
    std::vector<uint8_t> y;
    for (size_t p = 0; p < pairs.size(); ++p) {
      if (!in_contact_range(r, pairs.j[p] - pairs.i[p])) continue;
      s.push_back(scores[p]);
      y.push_back(truth.contact[static_cast<size_t>(pairs.i[p]) * truth.n + pairs.j[p]]);
    }
    RangeScore& rs = out[static_cast<int>(r)];
    rs.pairs = static_cast<int64_t>(s.size());
    rs.contacts = std::accumulate(y.begin(), y.end(), int64_t{0});
    for (size_t t = 0; t < kTopDivisors.size(); ++t)
      rs.top[t] = top_k_precision(s, y, std::max<int64_t>(1, truth.n / kTopDivisors[t]));
  }
  return out;
}

ProteinScore score_random(const ContactTruth& truth, const ScoredPairs& pairs) {
  // Every pair tied: the expected precision of a random order, at any k, is the density.
  return score_ranking(truth, pairs, std::vector<double>(pairs.size(), 0.0));
}

ProteinScore score_separation(const ContactTruth& truth, const ScoredPairs& pairs) {
  std::vector<double> s(pairs.size());
  for (size_t p = 0; p < pairs.size(); ++p) s[p] = -static_cast<double>(pairs.j[p] - pairs.i[p]);
  return score_ranking(truth, pairs, s);
}

Interval bootstrap_interval(const std::vector<double>& values, uint64_t seed, int64_t resamples, double level) {
  std::vector<double> v;
  for (double x : values)
    if (!std::isnan(x)) v.push_back(x);
  Interval out;
  out.count = static_cast<int64_t>(v.size());
  if (v.empty()) return {kNaN, kNaN, kNaN, 0};
  out.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  Rng rng(seed);
  std::vector<double> means(static_cast<size_t>(resamples));
  for (auto& m : means) {
    double sum = 0;
    for (size_t i = 0; i < v.size(); ++i) sum += v[rng.below(v.size())];
    m = sum / static_cast<double>(v.size());
  }
  std::sort(means.begin(), means.end());
  const auto at = [&](double q) {
    const auto idx = static_cast<size_t>(std::clamp(q * static_cast<double>(resamples - 1), 0.0,
                                                    static_cast<double>(resamples - 1)));
    return means[idx];
  };
  out.low = at((1.0 - level) / 2.0);
  out.high = at(1.0 - (1.0 - level) / 2.0);
  return out;
}

}  // namespace performer
