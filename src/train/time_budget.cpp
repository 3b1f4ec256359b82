#include "train/time_budget.h"

#include <algorithm>
#include <cmath>

#include "util/clock.h"

namespace performer {

int64_t steps_within_budget(int64_t step, int64_t steps_done, double elapsed_s, double budget_s, int64_t max_steps) {
  if (steps_done < 1 || elapsed_s <= 0) return max_steps;  // no pace to go by
  const double pace = elapsed_s / static_cast<double>(steps_done);
  const double more = std::floor(std::max(0.0, budget_s - elapsed_s) / pace);
  const double planned = static_cast<double>(step) + more;
  return std::max(step, static_cast<int64_t>(std::min(planned, static_cast<double>(max_steps))));
}

bool replan_due(int64_t step, int64_t planned_steps) {
  if (planned_steps <= 0 || step >= planned_steps) return false;
  return step % std::max(kMinCalibrationSteps, planned_steps / kReplansPerRun) == 0;
}

TimeBudget::TimeBudget(double budget_minutes, int64_t first_step)
    : budget_s_(60.0 * budget_minutes), first_step_(first_step), start_(std::chrono::steady_clock::now()) {}

double TimeBudget::seconds() const { return seconds_since(start_); }

int64_t TimeBudget::plan(int64_t step, int64_t max_steps) const {
  if (budget_s_ <= 0) return 0;
  const int64_t done = step - first_step_;
  const double elapsed = seconds();
  if (done < kMinCalibrationSteps || elapsed < std::min(kCalibrationShare * budget_s_, kMaxCalibrationSeconds)) return 0;
  return steps_within_budget(step, done, elapsed, budget_s_, max_steps);
}

int64_t TimeBudget::replan(int64_t step, int64_t planned_steps) const {
  if (budget_s_ <= 0) return planned_steps;
  return std::min(planned_steps, steps_within_budget(step, step - first_step_, seconds(), budget_s_, planned_steps));
}

}  // namespace performer
