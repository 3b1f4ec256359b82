#include "train/stop_policy.h"

#include "util/clock.h"
#include "util/names.h"

namespace performer {

std::atomic<bool> g_stop_training{false};

const std::vector<std::string>& stop_reason_names() {
  static const std::vector<std::string> names{"completed", "interrupted", "time limit", "stop_after", "non-finite"};
  return names;
}

std::string stop_reason_name(StopReason reason) { return name_of(reason, stop_reason_names()); }

bool can_continue(StopReason reason) {
  return reason == StopReason::kInterrupted || reason == StopReason::kTimeLimit || reason == StopReason::kStopAfter;
}

StopPolicy::StopPolicy(const Limits& limits, int64_t first_step)
    : limits_(limits), first_step_(first_step), start_(std::chrono::steady_clock::now()) {}

std::optional<StopReason> StopPolicy::before_step(int64_t step) const {
  if (step >= limits_.steps) return StopReason::kCompleted;
  if (g_stop_training.load()) return StopReason::kInterrupted;
  if (limits_.stop_after > 0 && step - first_step_ >= limits_.stop_after) return StopReason::kStopAfter;
  const double minutes = seconds_since(start_) / 60.0;
  if (limits_.max_minutes > 0 && minutes > limits_.max_minutes) return StopReason::kTimeLimit;
  return std::nullopt;
}

bool StopPolicy::after_step(bool finite) {
  consecutive_bad_ = finite ? 0 : consecutive_bad_ + 1;
  return consecutive_bad_ >= limits_.max_bad_steps;
}

}  // namespace performer
