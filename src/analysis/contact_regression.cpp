#include "analysis/contact_regression.h"

#include <linear.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "util/error.h"

namespace performer {

namespace {

void quiet(const char*) {}  // LIBLINEAR prints its iterations to stdout otherwise

}  // namespace

ContactRegression fit_contact_regression(const std::vector<double>& features, const std::vector<uint8_t>& labels,
                                         int64_t channels, const RegressionSettings& settings) {
  const auto pairs = static_cast<int64_t>(labels.size());
  if (channels <= 0 || static_cast<int64_t>(features.size()) != pairs * channels)
    throw Error("contact regression: " + std::to_string(features.size()) + " feature values for " +
                std::to_string(pairs) + " pairs of " + std::to_string(channels) + " channels");
  int64_t positives = 0;
  for (uint8_t y : labels) positives += y ? 1 : 0;
  if (positives == 0 || positives == pairs)
    throw Error("contact regression: the training pairs hold " + std::string(positives ? "only" : "no") +
                " contacts; fitting needs both contacts and non-contacts (" + std::to_string(pairs) + " pairs)");
  if (pairs > INT32_MAX / 2) throw Error("contact regression: too many pairs for LIBLINEAR (" + std::to_string(pairs) + ")");

  // LIBLINEAR's sparse rows: C features (1-based indices), the bias feature (value 1), a -1 terminator.
  const int64_t stride = channels + 2;
  std::vector<feature_node> nodes(static_cast<size_t>(pairs * stride));
  std::vector<feature_node*> rows(static_cast<size_t>(pairs));
  std::vector<double> y(static_cast<size_t>(pairs));
  for (int64_t p = 0; p < pairs; ++p) {
    feature_node* row = &nodes[p * stride];
    for (int64_t c = 0; c < channels; ++c) row[c] = {static_cast<int>(c + 1), features[p * channels + c]};
    row[channels] = {static_cast<int>(channels + 1), 1.0};
    row[channels + 1] = {-1, 0.0};
    rows[p] = row;
    y[p] = labels[p] ? 1.0 : -1.0;
  }
  problem prob{};
  prob.l = static_cast<int>(pairs);
  prob.n = static_cast<int>(channels + 1);
  prob.y = y.data();
  prob.x = rows.data();
  prob.bias = 1.0;
  parameter param{};
  param.solver_type = L1R_LR;
  param.eps = settings.tolerance;
  param.C = settings.c;
#if LIBLINEAR_VERSION >= 240
  param.regularize_bias = 1;  // 2.40 made the intercept's penalty optional; ours (and scikit-learn's) has it
#endif
  if (const char* bad = check_parameter(&prob, &param)) throw Error(std::string("contact regression: ") + bad);
  set_print_string_function(&quiet);
  std::unique_ptr<model, void (*)(model*)> fitted(::train(&prob, &param), [](model* m) { free_and_destroy_model(&m); });
  if (!fitted) throw Error("contact regression: LIBLINEAR returned no model");
  // For two classes LIBLINEAR's w scores the first label it met (label[0]); ours scores contacts (+1).
  const double sign = fitted->label[0] == 1 ? 1.0 : -1.0;
  ContactRegression out;
  out.weight.resize(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) out.weight[c] = sign * fitted->w[c];
  out.bias = sign * fitted->w[channels] * prob.bias;
  return out;
}

at::Tensor predict_contact_map(const at::Tensor& features, const ContactRegression& regression) {
  TORCH_CHECK(features.dim() == 3, "predict_contact_map: features must be [C, n, n]");
  if (features.size(0) != static_cast<int64_t>(regression.weight.size()))
    throw Error("contact regression: it was fitted on " + std::to_string(regression.weight.size()) +
                " attention channels (layers x heads) but this model has " + std::to_string(features.size(0)));
  const at::Tensor w = torch::tensor(regression.weight, torch::kDouble).view({-1, 1, 1});
  return torch::sigmoid((features.to(torch::kDouble) * w).sum(0) + regression.bias).to(torch::kFloat);
}

std::vector<double> predict_pairs(const std::vector<double>& features, const ContactRegression& regression) {
  const size_t C = regression.weight.size();
  std::vector<double> out(features.size() / C);
  for (size_t p = 0; p < out.size(); ++p) {
    double z = regression.bias;
    for (size_t c = 0; c < C; ++c) z += regression.weight[c] * features[p * C + c];
    out[p] = 1.0 / (1.0 + std::exp(-z));
  }
  return out;
}

CvResult cross_validate_c(const std::vector<std::vector<double>>& features, const std::vector<std::vector<uint8_t>>& labels,
                          int64_t channels, double tolerance) {
  const auto proteins = static_cast<int64_t>(features.size());
  if (proteins < 2 || labels.size() != features.size())
    throw Error("contact regression: choosing C by cross-validation needs two proteins or more (got " +
                std::to_string(proteins) + "); give --c");
  CvResult out;
  out.folds = std::min(kCvFolds, proteins);
  constexpr double kFloor = 1e-12;  // log(0) guard
  for (double c : kCGrid) {
    double sum = 0;
    int64_t pairs = 0;
    bool usable = true;
    for (int64_t f = 0; f < out.folds && usable; ++f) {
      std::vector<double> X;
      std::vector<uint8_t> y;
      for (int64_t k = 0; k < proteins; ++k)
        if (k % out.folds != f) {
          X.insert(X.end(), features[k].begin(), features[k].end());
          y.insert(y.end(), labels[k].begin(), labels[k].end());
        }
      const auto positives = std::count(y.begin(), y.end(), uint8_t{1});
      if (positives == 0 || positives == static_cast<int64_t>(y.size())) {
        usable = false;  // a fold without both classes: this split cannot score C
        break;
      }
      const ContactRegression r = fit_contact_regression(X, y, channels, {c, tolerance});
      for (int64_t k = f; k < proteins; k += out.folds) {
        const std::vector<double> p = predict_pairs(features[k], r);
        for (size_t i = 0; i < p.size(); ++i)
          sum += std::log(std::max(labels[k][i] ? p[i] : 1.0 - p[i], kFloor));
        pairs += static_cast<int64_t>(p.size());
      }
    }
    if (!usable) throw Error("contact regression: a cross-validation fold holds no contacts; give --c");
    out.grid.push_back(c);
    out.log_likelihood.push_back(sum / static_cast<double>(std::max<int64_t>(pairs, 1)));
  }
  const double best = *std::max_element(out.log_likelihood.begin(), out.log_likelihood.end());
  constexpr double kWithin = 1e-6;  // relative: equal up to the solver's tolerance
  for (size_t i = 0; i < out.grid.size(); ++i)
    if (out.log_likelihood[i] >= best - kWithin * std::abs(best)) {
      out.c = out.grid[i];
      break;
    }
  return out;
}

}  // namespace performer
