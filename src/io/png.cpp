#include "io/png.h"

#include <png.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>

#include "util/error.h"
#include "util/files.h"

namespace performer {

namespace {

using Glyph = std::array<uint8_t, 7>;  // 7 rows of 5 bits, most significant bit on the left

const std::map<char, Glyph>& font() {
  static const std::map<char, Glyph> f = {
      {'0', {0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110}},
      {'1', {0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}},
      {'2', {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111}},
      {'3', {0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110}},
      {'4', {0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010}},
      {'5', {0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110}},
      {'6', {0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110}},
      {'7', {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000}},
      {'8', {0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110}},
      {'9', {0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100}},
      {'A', {0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001}},
      {'B', {0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110}},
      {'C', {0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110}},
      {'D', {0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100}},
      {'E', {0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111}},
      {'F', {0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000}},
      {'G', {0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111}},
      {'H', {0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001}},
      {'I', {0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110}},
      {'J', {0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100}},
      {'K', {0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001}},
      {'L', {0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111}},
      {'M', {0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001}},
      {'N', {0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001}},
      {'O', {0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110}},
      {'P', {0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000}},
      {'Q', {0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101}},
      {'R', {0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001}},
      {'S', {0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110}},
      {'T', {0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100}},
      {'U', {0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110}},
      {'V', {0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100}},
      {'W', {0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010}},
      {'X', {0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001}},
      {'Y', {0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100}},
      {'Z', {0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111}},
      {' ', {0, 0, 0, 0, 0, 0, 0}},
      {'.', {0, 0, 0, 0, 0, 0b01100, 0b01100}},
      {'-', {0, 0, 0, 0b11111, 0, 0, 0}},
      {':', {0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0}},
      {'/', {0, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0}},
      {'=', {0, 0, 0b11111, 0, 0b11111, 0, 0}},
      {'(', {0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010}},
      {')', {0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000}},
      {',', {0, 0, 0, 0, 0b01100, 0b00100, 0b01000}},
      {'<', {0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010}},
      {'>', {0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000}},
      {'_', {0, 0, 0, 0, 0, 0, 0b11111}},
      {'+', {0, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0}},
      {'%', {0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011}},
      {'|', {0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100}},
      {'?', {0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0, 0b00100}},
  };
  return f;
}

const uint8_t kBlack[3] = {0, 0, 0};

// libpng reports errors through these; they jump back to the caller's setjmp without printing.
void png_error_silent(png_structp png, png_const_charp) { png_longjmp(png, 1); }
void png_warning_silent(png_structp, png_const_charp) {}

std::string format_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// Encodes the image into the open file f; false when libpng fails. No C++ object with a destructor lives
// in this frame, so libpng's longjmp back to the setjmp below skips nothing.
bool encode_png(FILE* f, const Image& image) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, png_error_silent, png_warning_silent);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y)
    png_write_row(png, const_cast<png_bytep>(&image.rgb[static_cast<size_t>(y) * static_cast<size_t>(image.width) * 3]));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

Image::Image(int w, int h, uint8_t gray) : width(w), height(h), rgb(static_cast<size_t>(w) * static_cast<size_t>(h) * 3, gray) {}

void Image::set(int x, int y, const uint8_t c[3]) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  uint8_t* p = &rgb[(static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) * 3];
  p[0] = c[0];
  p[1] = c[1];
  p[2] = c[2];
}

void Image::fill(int x, int y, int w, int h, const uint8_t c[3]) {
  for (int j = y; j < y + h; ++j)
    for (int i = x; i < x + w; ++i) set(i, j, c);
}

int Image::text(int x, int y, const std::string& s, int scale, const uint8_t* color) {
  const uint8_t* c = color ? color : kBlack;
  int cx = x;
  for (char ch : s) {
    char u = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    auto it = font().find(u);
    const Glyph& g = it != font().end() ? it->second : font().at('?');
    for (int row = 0; row < 7; ++row)
      for (int col = 0; col < 5; ++col)
        if (g[static_cast<size_t>(row)] & (1 << (4 - col))) fill(cx + col * scale, y + row * scale, scale, scale, c);
    cx += 6 * scale;
  }
  return cx - x;
}

void colormap(double t, uint8_t c[3]) {
  // Anchor colours of the viridis map at t = 0, 0.25, 0.5, 0.75, 1, linearly interpolated.
  static const double anchors[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  if (!std::isfinite(t)) t = 0;
  t = std::clamp(t, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  for (int k = 0; k < 3; ++k) c[k] = static_cast<uint8_t>(std::lround(anchors[i][k] * (1 - f) + anchors[i + 1][k] * f));
}

Image heatmap(const std::vector<float>& values, int n_rows, int n_cols, const std::string& title,
              const std::vector<std::string>& row_labels, const std::vector<std::string>& col_labels) {
  if (n_rows < 1 || n_cols < 1 || values.size() != static_cast<size_t>(n_rows) * static_cast<size_t>(n_cols))
    throw Error("heatmap: values do not match " + std::to_string(n_rows) + " x " + std::to_string(n_cols));
  const int cell = std::clamp(640 / std::max(n_rows, n_cols), 1, 12);
  const int left = 40, top = 28, bar_w = 14, right = 70, bottom = 24;
  const int W = left + n_cols * cell + 12 + bar_w + right, H = top + n_rows * cell + bottom;
  Image img(std::max(W, Image::text_width(title) + 16), H);
  img.text(8, 8, title);
  float lo = values[0], hi = values[0];
  for (float v : values) {
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  const double span = hi > lo ? hi - lo : 1.0;
  uint8_t c[3];
  for (int r = 0; r < n_rows; ++r)
    for (int k = 0; k < n_cols; ++k) {
      colormap((values[static_cast<size_t>(r) * static_cast<size_t>(n_cols) + static_cast<size_t>(k)] - lo) / span, c);
      img.fill(left + k * cell, top + r * cell, cell, cell, c);
    }
  // Labels: given names when the cells are large enough, else 1-based positions every `step` cells.
  const bool named = !row_labels.empty() && cell >= 8;
  const int step = std::max(1, (40 + cell - 1) / cell);  // about every 40 px
  for (int r = 0; r < n_rows; ++r) {
    if (named) {
      img.text(left - 10, top + r * cell + (cell - 7) / 2, row_labels[static_cast<size_t>(r)]);
    } else if (r % step == 0 || r == n_rows - 1) {
      std::string s = std::to_string(r + 1);
      img.text(left - 4 - Image::text_width(s), top + r * cell, s);
    }
  }
  for (int k = 0; k < n_cols; ++k) {
    if (!col_labels.empty() && cell >= 8) {
      img.text(left + k * cell + (cell - 5) / 2, top + n_rows * cell + 4, col_labels[static_cast<size_t>(k)]);
    } else if (k % step == 0 || k == n_cols - 1) {
      img.text(left + k * cell, top + n_rows * cell + 4, std::to_string(k + 1));
    }
  }
  // Colour bar with its range.
  const int bx = left + n_cols * cell + 12, bh = n_rows * cell;
  for (int j = 0; j < bh; ++j) {
    colormap(1.0 - static_cast<double>(j) / std::max(1, bh - 1), c);
    img.fill(bx, top + j, bar_w, 1, c);
  }
  img.text(bx + bar_w + 4, top, format_value(hi));
  img.text(bx + bar_w + 4, top + bh - 7, format_value(lo));
  return img;
}

Image side_by_side(const std::vector<Image>& images, int gap) {
  int W = gap, H = 0;
  for (auto& im : images) {
    W += im.width + gap;
    H = std::max(H, im.height);
  }
  Image out(W, H + 2 * gap);
  int x = gap;
  for (auto& im : images) {
    for (int y = 0; y < im.height; ++y)
      std::copy(im.rgb.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(y) * static_cast<size_t>(im.width) * 3),
                im.rgb.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(y + 1) * static_cast<size_t>(im.width) * 3),
                out.rgb.begin() + static_cast<std::ptrdiff_t>((static_cast<size_t>(y + gap) * static_cast<size_t>(W) + static_cast<size_t>(x)) * 3));
    x += im.width + gap;
  }
  return out;
}

void write_png(const std::string& path, const Image& image) {
  AtomicFile out(path);  // an error on the way removes the temporary; `path` keeps its previous content
  FILE* f = std::fopen(out.temporary().c_str(), "wb");
  if (!f) throw Error(path + ": cannot write PNG");
  if (!encode_png(f, image)) {
    std::fclose(f);
    throw Error(path + ": PNG encoding failed");
  }
  if (std::fclose(f) != 0) throw Error(path + ": cannot write PNG (disk full?)");
  out.commit();
}

std::pair<int, int> png_size(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open PNG");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, png_error_silent, png_warning_silent);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    std::fclose(f);
    throw Error(path + ": not a valid PNG");
  }
  png_init_io(png, f);
  png_read_png(png, info, PNG_TRANSFORM_IDENTITY, nullptr);  // decodes every row: fails on corrupt data
  std::pair<int, int> wh{static_cast<int>(png_get_image_width(png, info)), static_cast<int>(png_get_image_height(png, info))};
  png_destroy_read_struct(&png, &info, nullptr);
  std::fclose(f);
  return wh;
}

}  // namespace performer
