// How well a ranking of residue pairs finds the contacts of a structure: precision of the top L, L/2 and
// L/5 pairs (L = the protein's length) per sequence-separation range, the two baselines every figure is
// set against, and a bootstrap interval over proteins.
//
// Ties (the separation baseline scores whole diagonals alike) are shared fairly: the precision is its
// expected value over all orders of tied pairs, so no tie-break can flatter a predictor.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "analysis/contacts.h"

namespace performer {

// Top L / d for d in {1, 2, 5}.
constexpr std::array<int64_t, 3> kTopDivisors{1, 2, 5};

struct RangeScore {
  std::array<double, 3> top{};  // precision at top L, L/2, L/5 (NaN when the range has no scored pair)
  int64_t contacts = 0, pairs = 0;
};
using ProteinScore = std::array<RangeScore, kContactRanges>;

// Expected precision of the k best-scored items (k > 0): sum of labels among them / min(k, items), ties in
// score shared in proportion. NaN when there are no items.
double top_k_precision(const std::vector<double>& scores, const std::vector<uint8_t>& labels, int64_t k);

// A predictor's scores of `pairs` (one per scored pair, higher = more likely a contact), per range.
ProteinScore score_ranking(const ContactTruth& truth, const ScoredPairs& pairs, const std::vector<double>& scores);
// Baseline 1, a random ranking: its expected precision at any k is the range's contact density.
ProteinScore score_random(const ContactTruth& truth, const ScoredPairs& pairs);
// Baseline 2, sequence separation alone: the closer in sequence, the likelier a contact (score -(j - i)).
ProteinScore score_separation(const ContactTruth& truth, const ScoredPairs& pairs);

// Mean of `values` (NaN entries left out) with a percentile bootstrap interval over them.
struct Interval {
  double mean = 0, low = 0, high = 0;
  int64_t count = 0;  // values used
};
constexpr int64_t kBootstrapResamples = 2000;
Interval bootstrap_interval(const std::vector<double>& values, uint64_t seed = 0,
                            int64_t resamples = kBootstrapResamples, double level = 0.95);

}  // namespace performer
