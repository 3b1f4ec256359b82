// Progress of a long job on stderr: bytes done of total, items/s, ETA. On a terminal it redraws one line
// a few times a second; otherwise (log files, CI) it prints a plain line every 10 seconds.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace performer {

class Progress {
 public:
  // check_every: update() looks at the clock on every check_every-th call only (1 for callers that update
  // once per chunk of work rather than once per record).
  Progress(std::string label, uint64_t total_bytes, bool enabled = true, int64_t check_every = 1024);
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
  int64_t calls_ = 0, check_every_ = 1024;
};

}  // namespace performer
