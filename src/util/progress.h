// Progress of a long job on stderr: bytes done of total, items/s, ETA. On a terminal it redraws one line
// a few times a second; otherwise (log files, CI) it prints a plain line every 10 seconds.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace performer {

class Progress {
 public:
  Progress(std::string label, uint64_t total_bytes, bool enabled = true);
  // Cheap to call often: prints only when the redraw interval has passed.
  void update(uint64_t bytes_done, int64_t items);
  // Final line with totals.
  void finish(uint64_t bytes_done, int64_t items);
  double elapsed() const;

 private:
  void print(uint64_t bytes_done, int64_t items, bool final);
  std::string label_;
  uint64_t total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_;
  int64_t calls_ = 0;
};

std::string human_bytes(double bytes);
// "16GB", "512MB", "1e9" (bytes; units B, KB, MB, GB, TB, powers of 1000). Throws Error naming the text.
uint64_t parse_bytes(const std::string& text);
// "a,b,,c" -> {a, b, c}.
std::vector<std::string> split_list(const std::string& text);
std::string human_duration(double seconds);
// UTC time as ISO 8601, e.g. 2026-11-29T13:05:00Z (stored in corpus and checkpoint attributes).
std::string now_iso8601();

}  // namespace performer
