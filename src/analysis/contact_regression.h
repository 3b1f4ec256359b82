// The contact regression: an L1-regularized logistic regression from a pair's attention features
// (analysis/contacts.h: C = layers x heads values) to the probability that the pair is in contact,
//     p_ij = sigmoid(w . F_ij + b),
// fitted by minimizing  |w|_1 + |b| + C_reg * sum_pairs log(1 + exp(-y (w . F + b)))  (y = +-1).
// The solver is LIBLINEAR's L1R_LR (newGLMNET; Debian's liblinear-dev), the same objective as
// scikit-learn's LogisticRegression(l1_ratio=1, solver="liblinear"), whose intercept is penalized like a
// weight. The L1 penalty keeps the heads that carry contact information and zeroes the rest, so ~20
// proteins are enough to fit it.
#pragma once
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

// features: row-major [pairs, C] float64; labels: 1 = contact. Both classes must occur (else an Error).
ContactRegression fit_contact_regression(const std::vector<double>& features, const std::vector<uint8_t>& labels,
                                         int64_t channels, const RegressionSettings& settings);

// p = sigmoid(w . F + b) for every pair of a protein: features [C, n, n] -> probabilities [n, n] float32.
at::Tensor predict_contact_map(const at::Tensor& features, const ContactRegression& regression);
// The same for rows of a [pairs, C] matrix (double).
std::vector<double> predict_pairs(const std::vector<double>& features, const ContactRegression& regression);

}  // namespace performer
