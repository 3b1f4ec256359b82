#include "analysis/scaling_fit.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "util/error.h"

namespace performer {

double PowerLaw::at(double x) const { return a * std::pow(x, b); }

double PowerLaw::solve(double y) const {
  if (b == 0) throw Error("power law: a flat law (exponent 0) reaches no other value");
  return std::pow(y / a, 1.0 / b);
}

PowerLaw fit_power_law(const std::vector<double>& x, const std::vector<double>& y, const char* what) {
  if (x.size() != y.size() || x.size() < 2)
    throw Error(std::string(what) + ": a power law needs at least two points");
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!(x[i] > 0) || !(y[i] > 0) || !std::isfinite(x[i]) || !std::isfinite(y[i]))
      throw Error(std::string(what) + ": a power law needs positive finite points");
    const double lx = std::log(x[i]), ly = std::log(y[i]);
    n += 1;
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
  }
  const double var = sxx - sx * sx / n;
  if (var <= 1e-12 * std::max(1.0, sxx)) throw Error(std::string(what) + ": a power law needs two distinct x");
  PowerLaw p;
  p.b = (sxy - sx * sy / n) / var;
  p.a = std::exp((sy - p.b * sx) / n);
  return p;
}

IsoFlopMinimum isoflop_minimum(const std::vector<double>& sizes, const std::vector<double>& losses) {
  if (sizes.empty() || sizes.size() != losses.size()) throw Error("isoFLOP fit: no runs at this budget");
  const size_t best = static_cast<size_t>(std::min_element(losses.begin(), losses.end()) - losses.begin());
  IsoFlopMinimum m{sizes[best], losses[best], false};
  if (sizes.size() < 3) return m;
  // Normal equations of loss = c0 + c1 t + c2 t^2, t = log N centred on its mean (better conditioned).
  double mean = 0;
  for (double s : sizes) mean += std::log(s) / static_cast<double>(sizes.size());
  double S[5] = {0, 0, 0, 0, 0}, T[3] = {0, 0, 0};  // S[k] = sum t^k, T[k] = sum t^k y
  for (size_t i = 0; i < sizes.size(); ++i) {
    const double t = std::log(sizes[i]) - mean;
    double p = 1;
    for (int k = 0; k < 5; ++k, p *= t) {
      S[k] += p;
      if (k < 3) T[k] += p * losses[i];
    }
  }
  // Cramer's rule on the 3 x 3 system [S0 S1 S2; S1 S2 S3; S2 S3 S4] c = T.
  auto det3 = [](double a, double b, double c, double d, double e, double f, double g, double h, double i) {
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  };
  const double D = det3(S[0], S[1], S[2], S[1], S[2], S[3], S[2], S[3], S[4]);
  if (std::abs(D) < 1e-12) return m;  // sizes too close together for a parabola
  const double c0 = det3(T[0], S[1], S[2], T[1], S[2], S[3], T[2], S[3], S[4]) / D;
  const double c1 = det3(S[0], T[0], S[2], S[1], T[1], S[3], S[2], T[2], S[4]) / D;
  const double c2 = det3(S[0], S[1], T[0], S[1], S[2], T[1], S[2], S[3], T[2]) / D;
  if (!(c2 > 0)) return m;
  const double t = -c1 / (2 * c2);
  const auto [lo, hi] = std::minmax_element(sizes.begin(), sizes.end());
  if (t < std::log(*lo) - mean || t > std::log(*hi) - mean) return m;
  return {std::exp(t + mean), c0 + c1 * t + c2 * t * t, true};
}

}  // namespace performer
