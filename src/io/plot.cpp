#include "io/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace performer {

namespace {

const uint8_t kBlack[3] = {0, 0, 0};
const uint8_t kGrid[3] = {225, 225, 225};
const uint8_t kRef[3] = {200, 40, 40};
// Distinct line colours (colour-blind safe ordering: blue, orange, green, purple, brown, pink).
const uint8_t kColours[6][3] = {{0, 114, 178}, {230, 159, 0}, {0, 158, 115}, {204, 121, 167}, {140, 86, 75}, {86, 180, 233}};

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  int p0 = 0, p1 = 1;  // pixel positions of lo and hi
  double t(double v) const { return log ? std::log(v) : v; }
  int pixel(double v) const {
    const double f = (t(v) - t(lo)) / (t(hi) - t(lo));
    return static_cast<int>(std::lround(p0 + f * (p1 - p0)));
  }
};

// Data range of a set of values, padded a little; logarithmic ranges are padded by a factor.
void set_range(Axis& a, std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [&](double x) { return !std::isfinite(x) || (a.log && x <= 0); }), v.end());
  if (v.empty()) v = {1.0, 10.0};
  auto [mn, mx] = std::minmax_element(v.begin(), v.end());
  a.lo = *mn;
  a.hi = *mx;
  if (a.log) {
    if (a.hi / a.lo < 1.5) {
      a.lo /= 1.5;
      a.hi *= 1.5;
    }
    const double pad = std::pow(a.hi / a.lo, 0.06);
    a.lo /= pad;
    a.hi *= pad;
  } else {
    double span = a.hi - a.lo;
    if (span <= 0) span = std::max(1e-9, std::fabs(a.hi) * 0.1 + 1e-9);
    a.lo -= 0.06 * span;
    a.hi += 0.06 * span;
  }
}

// Ticks: 1-2-5 steps on linear axes; powers of ten (with 2 and 5 when the range is short) on log axes.
std::vector<double> auto_ticks(const Axis& a) {
  std::vector<double> ticks;
  if (a.log) {
    const double span = std::log10(a.hi / a.lo);
    const std::vector<double> mult = span < 0.5   ? std::vector<double>{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9}
                                     : span < 1.2 ? std::vector<double>{1, 1.5, 2, 3, 5, 7}
                                     : span < 3  ? std::vector<double>{1, 2, 5}
                                                 : std::vector<double>{1};
    for (int e = static_cast<int>(std::floor(std::log10(a.lo))) - 1; e <= static_cast<int>(std::ceil(std::log10(a.hi))); ++e)
      for (double m : mult) {
        const double v = m * std::pow(10.0, e);
        if (v >= a.lo && v <= a.hi) ticks.push_back(v);
      }
    return ticks;
  }
  const double raw = (a.hi - a.lo) / 6.0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
  for (double v = std::ceil(a.lo / step) * step; v <= a.hi + 1e-12 * step; v += step)
    ticks.push_back(std::fabs(v) < 1e-12 * step ? 0.0 : v);
  return ticks;
}

void line(Image& img, int x0, int y0, int x1, int y1, const uint8_t c[3], int thickness = 2, int dash = 0) {
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy, n = 0;
  while (true) {
    if (dash == 0 || (n / dash) % 2 == 0) img.fill(x0 - thickness / 2, y0 - thickness / 2, thickness, thickness, c);
    ++n;
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

void cross(Image& img, int x, int y, const uint8_t c[3]) {
  line(img, x - 5, y - 5, x + 5, y + 5, c);
  line(img, x - 5, y + 5, x + 5, y - 5, c);
}

// Margins of the plot area inside the image.
constexpr int kLeft = 70, kRight = 20, kTop = 48, kBottom = 50;

// Both axes: their ranges cover every point, failure marker, given tick and reference line.
void fit_axes(const std::vector<PlotSeries>& series, const PlotOptions& o, Axis& ax, Axis& ay) {
  ax.log = o.log_x;
  ay.log = o.log_y;
  std::vector<double> xs = o.x_ticks, ys;
  for (const auto& s : series) {
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    xs.insert(xs.end(), s.failed_x.begin(), s.failed_x.end());
    ys.insert(ys.end(), s.y.begin(), s.y.end());
  }
  for (const auto& r : o.references) ys.push_back(r.y);
  set_range(ax, xs);
  set_range(ay, ys);
  ax.p0 = kLeft;
  ax.p1 = o.width - kRight;
  ay.p0 = o.height - kBottom;
  ay.p1 = kTop;
}

// Grid lines, tick marks and their labels.
void draw_grid(Image& img, const Axis& ax, const Axis& ay, const std::vector<double>& x_ticks) {
  const std::vector<double> xt = x_ticks.empty() ? auto_ticks(ax) : x_ticks;
  for (double v : xt) {
    const int px = ax.pixel(v);
    if (px < ax.p0 || px > ax.p1) continue;
    img.fill(px, ay.p1, 1, ay.p0 - ay.p1, kGrid);
    img.fill(px, ay.p0, 1, 5, kBlack);
    const std::string s = tick_label(v);
    img.text(px - Image::text_width(s) / 2, ay.p0 + 8, s);
  }
  for (double v : auto_ticks(ay)) {
    const int py = ay.pixel(v);
    if (py < ay.p1 || py > ay.p0) continue;
    img.fill(ax.p0, py, ax.p1 - ax.p0, 1, kGrid);
    img.fill(ax.p0 - 5, py, 5, 1, kBlack);
    const std::string s = tick_label(v);
    img.text(ax.p0 - 8 - Image::text_width(s), py - 3, s);
  }
}

// Frame, axis labels and the dashed reference lines.
void draw_frame(Image& img, const Axis& ax, const Axis& ay, const PlotOptions& o) {
  img.fill(ax.p0, ay.p1, 1, ay.p0 - ay.p1 + 1, kBlack);
  img.fill(ax.p1, ay.p1, 1, ay.p0 - ay.p1 + 1, kBlack);
  img.fill(ax.p0, ay.p0, ax.p1 - ax.p0 + 1, 1, kBlack);
  img.fill(ax.p0, ay.p1, ax.p1 - ax.p0 + 1, 1, kBlack);
  img.text((ax.p0 + ax.p1 - Image::text_width(o.x_label)) / 2, o.height - 18, o.x_label);
  img.text(8, kTop - 12, o.y_label);
  for (const auto& r : o.references) {
    const int py = ay.pixel(r.y);
    line(img, ax.p0, py, ax.p1, py, kRef, 1, 6);
    img.text(ax.p0 + 6, py - 10, r.label, 1, kRef);
  }
}

// Lines, markers and failure crosses of every series; true when any failure was drawn.
bool draw_series(Image& img, const std::vector<PlotSeries>& series, const Axis& ax, const Axis& ay) {
  bool any_failed = false;
  for (size_t i = 0; i < series.size(); ++i) {
    const uint8_t* c = kColours[i % 6];
    const auto& s = series[i];
    int px = -1, py = -1;
    for (size_t k = 0; k < s.x.size() && k < s.y.size(); ++k) {
      if (!std::isfinite(s.y[k]) || (ay.log && s.y[k] <= 0)) {
        px = -1;
        continue;
      }
      const int x = ax.pixel(s.x[k]), y = ay.pixel(s.y[k]);
      if (px >= 0) line(img, px, py, x, y, c);
      img.fill(x - 3, y - 3, 7, 7, c);
      px = x;
      py = y;
    }
    for (double fx : s.failed_x) {
      cross(img, ax.pixel(fx), ay.p1 + 8 + 3 * static_cast<int>(i), c);
      any_failed = true;
    }
  }
  return any_failed;
}

// Legend: one row between the title and the frame.
void draw_legend(Image& img, const std::vector<PlotSeries>& series, const PlotOptions& o, bool any_failed) {
  int lx = kLeft;
  const int ly = 22;
  for (size_t i = 0; i < series.size(); ++i) {
    img.fill(lx, ly + 2, 16, 3, kColours[i % 6]);
    lx += 22 + img.text(lx + 22, ly, series[i].name) + 14;
  }
  if (any_failed) {
    cross(img, lx + 6, ly + 3, kBlack);
    img.text(lx + 16, ly, o.failed_label + " (TOP EDGE)");
  }
}

}  // namespace

std::string tick_label(double v) {
  char buf[32];
  const double a = std::fabs(v);
  auto fmt = [&](double x, const char* suffix) {
    if (std::fabs(x - std::round(x)) < 1e-9)
      std::snprintf(buf, sizeof buf, "%.0f%s", x, suffix);
    else
      std::snprintf(buf, sizeof buf, "%.3g%s", x, suffix);
    return std::string(buf);
  };
  if (a >= 1e15) {  // 1e15, 2.5e16 (FLOPs axes)
    std::snprintf(buf, sizeof buf, "%.3g", v);
    std::string t(buf);
    const size_t e = t.find("e+");
    if (e != std::string::npos) t.erase(e + 1, t.find_first_not_of("+0", e + 1) - (e + 1));
    return t;
  }
  if (a >= 1e12) return fmt(v / 1e12, "T");
  if (a >= 1e9) return fmt(v / 1e9, "G");
  if (a >= 1e6) return fmt(v / 1e6, "M");
  if (a >= 1e5) return fmt(v / 1e3, "K");
  return fmt(v, "");
}

Image line_plot(const std::vector<PlotSeries>& series, const PlotOptions& o) {
  Image img(o.width, o.height);
  Axis ax, ay;
  fit_axes(series, o, ax, ay);
  img.text(8, 6, o.title, 1);
  draw_grid(img, ax, ay, o.x_ticks);
  draw_frame(img, ax, ay, o);
  const bool any_failed = draw_series(img, series, ax, ay);
  draw_legend(img, series, o, any_failed);
  return img;
}

}  // namespace performer
