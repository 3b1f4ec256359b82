#include "util/progress.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cctype>
#include <ctime>
#include <sstream>

#include "util/error.h"

namespace performer {

Progress::Progress(std::string label, uint64_t total_bytes, bool enabled)
    : label_(std::move(label)), total_(total_bytes), enabled_(enabled), tty_(isatty(STDERR_FILENO) != 0) {
  start_ = last_ = std::chrono::steady_clock::now();
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(uint64_t bytes_done, int64_t items) {
  if (!enabled_ || (++calls_ & 1023) != 0) return;  // look at the clock every 1024 calls only
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.25 : 10.0)) return;
  last_ = now;
  print(bytes_done, items, false);
}

void Progress::finish(uint64_t bytes_done, int64_t items) {
  if (enabled_) print(bytes_done, items, true);
}

void Progress::print(uint64_t bytes_done, int64_t items, bool final) {
  double t = elapsed();
  double frac = total_ > 0 ? static_cast<double>(bytes_done) / static_cast<double>(total_) : 0.0;
  double rate = t > 0 ? static_cast<double>(items) / t : 0.0;
  double mbps = t > 0 ? static_cast<double>(bytes_done) / t / 1e6 : 0.0;
  char line[256];
  if (final) {
    std::snprintf(line, sizeof line, "%s: %s in %s (%.1f MB/s, %.0f seq/s)", label_.c_str(),
                  human_bytes(static_cast<double>(bytes_done)).c_str(), human_duration(t).c_str(), mbps, rate);
  } else {
    double eta = frac > 0 ? t * (1.0 - frac) / frac : 0.0;
    std::snprintf(line, sizeof line, "%s: %s of %s (%.0f%%), %.0f seq/s, %.1f MB/s, ETA %s", label_.c_str(),
                  human_bytes(static_cast<double>(bytes_done)).c_str(), human_bytes(static_cast<double>(total_)).c_str(),
                  100.0 * frac, rate, mbps, human_duration(eta).c_str());
  }
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

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

}  // namespace performer

namespace performer {

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

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace performer
