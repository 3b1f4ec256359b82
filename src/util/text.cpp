#include "util/text.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "util/error.h"

namespace performer {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  while (b >= 1000 && u < 6) {
    b /= 1000;
    ++u;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : b < 1e6 ? "%.1f %s" : "%.2g %s", b, units[u]);
  return buf;
}

std::string human_duration(double s) {
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) / 60) % 60);
  return buf;
}

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

uint64_t parse_bytes(const std::string& s) {
  double v = 0;
  char unit[8] = {0};
  if (std::sscanf(s.c_str(), "%lf%7s", &v, unit) < 1 || v <= 0) throw Error("memory size '" + s + "': expected e.g. 16GB");
  std::string u(unit);
  for (auto& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const double mult = u.empty() || u == "B" ? 1 : u == "KB" ? 1e3 : u == "MB" ? 1e6 : u == "GB" ? 1e9 : u == "TB" ? 1e12 : -1;
  if (mult < 0) throw Error("memory size '" + s + "': unit must be B, KB, MB, GB or TB");
  return static_cast<uint64_t>(v * mult);
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what, int64_t min) {
  std::vector<int64_t> out;
  size_t begin = 0;
  for (;;) {  // every item between commas, the first and the last included (so "512," has an empty one)
    const size_t end = std::min(text.find(',', begin), text.size());
    const std::string item = text.substr(begin, end - begin);
    const size_t digits = !item.empty() && item[0] == '-' ? 1 : 0;  // after one optional minus
    bool whole = item.size() > digits && item.find_first_not_of("0123456789", digits) == std::string::npos;
    long long v = 0;
    if (whole) {
      errno = 0;
      v = std::strtoll(item.c_str(), nullptr, 10);
      whole = errno != ERANGE;
    }
    if (!whole || v < min)
      throw Error(what + ": '" + item + "' is not a " + (min == 1 ? "positive " : min == 0 ? "non-negative " : "") +
                  "whole number" + (whole && min > 1 ? " >= " + std::to_string(min) : ""));
    out.push_back(v);
    if (end == text.size()) break;
    begin = end + 1;
  }
  return out;
}

std::vector<int64_t> resolve_indices(const std::vector<int64_t>& indices, int64_t n, const std::string& what) {
  std::vector<int64_t> out;
  for (int64_t i : indices) {
    const int64_t r = i < 0 ? n + i : i;
    if (r < 0 || r >= n)
      throw Error(what + ": " + std::to_string(i) + " does not exist (0.." + std::to_string(n - 1) + ", or -" +
                  std::to_string(n) + "..-1 counted from the end)");
    if (std::find(out.begin(), out.end(), r) != out.end())
      throw Error(what + ": " + std::to_string(i) + " is asked for twice (as " + std::to_string(r) + ")");
    out.push_back(r);
  }
  return out;
}

std::vector<int64_t> parse_index_list(const std::string& text, int64_t n, const std::string& what) {
  if (text == "all") {
    std::vector<int64_t> all(static_cast<size_t>(std::max<int64_t>(n, 0)));
    for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
    return all;
  }
  return resolve_indices(parse_int_list(text, what), n, what);
}

}  // namespace performer
