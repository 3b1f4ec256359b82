// When a training run stops, and why: the steps are done, a signal (SIGINT/SIGTERM, after the current
// step), --stop-after steps of this invocation, the time budget train.max_minutes, or
// train.max_bad_steps consecutive steps with a NaN/Inf loss or gradient.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace performer {

enum class StopReason { kCompleted, kInterrupted, kTimeLimit, kStopAfter, kNonFinite };
const std::vector<std::string>& stop_reason_names();  // "completed", "interrupted", "time limit", "stop_after", "non-finite"
std::string stop_reason_name(StopReason reason);
// Whether the run stopped early but whole (a checkpoint of the last step): `--resume auto` continues it.
bool can_continue(StopReason reason);

// Set by SIGINT/SIGTERM: the loop finishes the current step, checkpoints and returns.
extern std::atomic<bool> g_stop_training;

class StopPolicy {
 public:
  struct Limits {
    int64_t steps = 0;          // train.steps
    int64_t stop_after = 0;     // steps of this invocation; 0 = no limit
    double max_minutes = 0;     // wall time of this invocation; 0 = no limit
    int64_t max_bad_steps = 1;  // consecutive non-finite steps
  };
  StopPolicy(const Limits& limits, int64_t first_step);

  // Before step `step` + 1: the reason to stop now, if any.
  std::optional<StopReason> before_step(int64_t step) const;
  // After a step: counts consecutive non-finite steps; true once there were max_bad_steps in a row.
  bool after_step(bool finite);
  int64_t consecutive_bad() const { return consecutive_bad_; }
  void set_steps(int64_t steps) { limits_.steps = steps; }  // train.steps as a time budget planned them

 private:
  Limits limits_;
  int64_t first_step_;
  std::chrono::steady_clock::time_point start_;
  int64_t consecutive_bad_ = 0;
};

}  // namespace performer
