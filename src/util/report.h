// Two helpers of the commands that write reports (attention, contacts): a figure as printed in their
// tables, and a protein's name made safe for file names and HDF5 group names.
#pragma once
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>

namespace performer {

// "%.3f", or "n/a" for NaN.
inline std::string figure3(double x) {
  if (std::isnan(x)) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", x);
  return b;
}

// Letters, digits, '_' and '-' kept; anything else becomes '_'.
inline std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s) out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ? c : '_');
  return out;
}

}  // namespace performer
