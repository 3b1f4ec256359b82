// Small RGB images written as PNG (libpng): heatmaps with a colour scale and text labels drawn with a
// built-in 5x7 bitmap font (digits, letters, a few symbols), so no font files are needed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace performer {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
  Image(int w, int h, uint8_t gray = 255);
  void set(int x, int y, const uint8_t c[3]);
  void fill(int x, int y, int w, int h, const uint8_t c[3]);
  // Text in the 5x7 font at (x, y) top-left, each font pixel drawn as scale x scale. Returns the width.
  int text(int x, int y, const std::string& s, int scale = 1, const uint8_t* color = nullptr);
  static int text_width(const std::string& s, int scale = 1) { return static_cast<int>(s.size()) * 6 * scale; }
};

// Maps t in [0, 1] to a perceptually ordered colour (viridis-like), written into c.
void colormap(double t, uint8_t c[3]);

// A heatmap of an n_rows x n_cols row-major matrix: title on top, row/column position labels
// (1-based, every few cells), and a colour bar with the value range. Cells are 1-12 px.
Image heatmap(const std::vector<float>& values, int n_rows, int n_cols, const std::string& title,
              const std::vector<std::string>& row_labels = {}, const std::vector<std::string>& col_labels = {});
// Places images side by side (top-aligned) on a white canvas with a gap.
Image side_by_side(const std::vector<Image>& images, int gap = 16);

// Writes the image whole or not at all (util/files.h AtomicFile: "<path>.tmp-<pid>", moved durably over
// `path`). Errors name the path.
void write_png(const std::string& path, const Image& image);
// Width and height of a PNG file (for tests and checks).
std::pair<int, int> png_size(const std::string& path);

}  // namespace performer
