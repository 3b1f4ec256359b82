// The contact regression: an L1-regularized logistic regression from a pair's attention features
// (analysis/contacts.h: C = layers x heads values) to the probability that the pair is in contact,
//     p_ij = sigmoid(w . F_ij + b),
// fitted by minimizing  |w|_1 + |b| + C_reg * sum_pairs log(1 + exp(-y (w . F + b)))  (y = +-1).
// The solver is LIBLINEAR's L1R_LR (newGLMNET; Debian's liblinear-dev), the same objective as
// scikit-learn's LogisticRegression(l1_ratio=1, solver="liblinear"), whose intercept is penalized like a
// weight. The L1 penalty keeps the heads that carry contact information and zeroes the rest, so ~20
// proteins are enough to fit it.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace performer {

struct ContactRegression {
  std::vector<double> weight;  // [C], layer-major channels
  double bias = 0;
};

struct RegressionSettings {
  double c = 0.15;           // inverse regularization strength C_reg (smaller: sparser)
  double tolerance = 1e-4;   // LIBLINEAR's stopping tolerance eps
};

// C chosen by cross-validation over proteins: the grid below, folds of whole proteins (protein k in fold
// k mod folds), each C scored by the mean log-likelihood of the held-out pairs (a proper score that does not
// saturate when few pairs are ranked); the best C wins, the smaller of two equal ones (relative 1e-6: the
// sparser fit). A margin of the kind "within 1% of the best" would not do: the base rate dominates the
// log-likelihood, and real attention signal moves it by 1e-4 relative. Attention features are small numbers (probabilities ~1/n), so a fixed C that suits
// one model zeroes every weight of another: ESM's contact head used 0.15 on ESM-2's sharp maps.
constexpr std::array<double, 9> kCGrid{0.03, 0.1, 0.15, 0.3, 1, 3, 10, 30, 100};
constexpr int64_t kCvFolds = 4;
struct CvResult {
  double c = 0;
  std::vector<double> grid, log_likelihood;  // per C: mean held-out log-likelihood per pair
  int64_t folds = 0;
};
// features[k]: protein k's row-major [pairs_k, C] matrix; labels[k] its labels. Needs two proteins or more.
CvResult cross_validate_c(const std::vector<std::vector<double>>& features, const std::vector<std::vector<uint8_t>>& labels,
                          int64_t channels, double tolerance);

// features: row-major [pairs, C] float64; labels: 1 = contact. Both classes must occur (else an Error).
ContactRegression fit_contact_regression(const std::vector<double>& features, const std::vector<uint8_t>& labels,
                                         int64_t channels, const RegressionSettings& settings);

// p = sigmoid(w . F + b) for every pair of a protein: features [C, n, n] -> probabilities [n, n] float32.
at::Tensor predict_contact_map(const at::Tensor& features, const ContactRegression& regression);
// The same for rows of a [pairs, C] matrix (double).
std::vector<double> predict_pairs(const std::vector<double>& features, const ContactRegression& regression);

}  // namespace performer
