#include "util/clock.h"
#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

#include "util/text.h"

namespace performer {

Progress::Progress(std::string label, uint64_t total_bytes, bool enabled, int64_t check_every)
    : label_(std::move(label)),
      total_(total_bytes),
      enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      check_every_(check_every < 1 ? 1 : check_every) {
  start_ = last_ = std::chrono::steady_clock::now();
}

double Progress::elapsed() const {
  return seconds_since(start_);
}

void Progress::update(uint64_t bytes_done, int64_t items) {
  if (!enabled_ || ++calls_ % check_every_ != 0) return;  // look at the clock every check_every calls only
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

}  // namespace performer
