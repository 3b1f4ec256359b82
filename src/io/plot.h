// Line plots as PNG images (io/png.h canvas and font): one line per series with point markers, linear or
// logarithmic axes, tick labels, a legend, optional horizontal reference lines and "failed" markers
// (e.g. out of memory) drawn as crosses on the top edge at their x. Used by `performer longseq`.
#pragma once
#include <string>
#include <vector>

#include "io/png.h"

namespace performer {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;     // points; non-finite y values are left out (the line breaks there)
  std::vector<double> failed_x; // x positions marked with a cross on the top edge
};

struct PlotReference {
  double y = 0;
  std::string label;  // drawn above the dashed line, at the right
};

struct PlotOptions {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<double> x_ticks;  // empty: chosen automatically
  std::vector<PlotReference> references;
  std::string failed_label = "OOM";  // legend text of the cross marker
  int width = 640, height = 420;
};

Image line_plot(const std::vector<PlotSeries>& series, const PlotOptions& options);

// Compact tick label: 1024, 2.5, 0.01, 1.5K, 3M, 2G, 30T, 1e15 (used by line_plot; exposed for tests).
std::string tick_label(double v);

}  // namespace performer
