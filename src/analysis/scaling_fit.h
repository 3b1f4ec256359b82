// The fits of an isoFLOP study (`performer scaling`): small pure functions on (x, y) points.
//
//   power law           y = a x^b, least squares on (log x, log y)
//   isoFLOP minimum     at one compute budget, loss against model size N: a parabola in log N,
//                       loss = c0 + c1 t + c2 t^2 with t = log N, whose vertex t* = -c1 / (2 c2) is the
//                       compute-optimal size N* = exp(t*) when the parabola opens upward and the vertex lies
//                       within the sizes tried; otherwise the best size tried (no extrapolation)
#pragma once
#include <vector>

namespace performer {

struct PowerLaw {
  double a = 0, b = 0;  // y = a x^b
  double at(double x) const;
  // x where the law reaches y (x = (y / a)^(1/b)); needs b != 0.
  double solve(double y) const;
};

// Least squares in log-log space; needs at least two points with distinct x, every x and y > 0
// (an Error otherwise, naming `what`).
PowerLaw fit_power_law(const std::vector<double>& x, const std::vector<double>& y, const char* what);

struct IsoFlopMinimum {
  double size = 0;        // N*: the vertex, or the best size tried
  double loss = 0;        // the parabola's value there (or the best loss tried)
  bool interpolated = false;  // true: the vertex of an upward parabola inside [min N, max N]
};

// The compute-optimal size at one budget from (sizes, losses) of its runs; one or two runs give the best.
IsoFlopMinimum isoflop_minimum(const std::vector<double>& sizes, const std::vector<double>& losses);

}  // namespace performer
