// train.budget_minutes: a run's schedule fitted to a wall-clock budget.
//
// A run of train.steps steps with a decaying schedule (linear, cosine) that is cut off by train.max_minutes on
// a slow machine stops with its learning rate still high, and a model that is worse than a shorter run decayed
// to the end. With a budget, the run measures its own pace once it has trained for a tenth of the budget (at
// most a minute, and at least kMinCalibrationSteps steps), and lowers train.steps (never raises it) to the
// steps the rest of the budget holds at that pace:
//
//   pace   = elapsed / steps done in this invocation       (seconds per step; evaluations and checkpoints
//                                                           so far included, later ones not foreseen)
//   steps' = min(train.steps, step + floor((budget - elapsed) / pace))
//
// so the schedule decays to 0 at the budget's end. The planned steps are stored in every later checkpoint
// (TrainState::planned_steps), and a resumed run keeps them, so a resume is exact. An invocation resumed
// before its run planned counts the budget from its own start.
#pragma once
#include <chrono>
#include <cstdint>

namespace performer {

// The budget's share, and the most time, spent measuring the pace before the steps are planned.
constexpr double kCalibrationShare = 0.1;
constexpr double kMaxCalibrationSeconds = 60.0;
constexpr int64_t kMinCalibrationSteps = 10;

// The steps a run fits in `budget_s` seconds: at step `step`, after `steps_done` steps in `elapsed_s` seconds
// of this invocation, capped at `max_steps` and never below `step` (a spent budget ends the run now).
int64_t steps_within_budget(int64_t step, int64_t steps_done, double elapsed_s, double budget_s, int64_t max_steps);

class TimeBudget {
 public:
  // The clock starts now, at step `first_step` of the run. budget_minutes 0: no budget.
  TimeBudget(double budget_minutes, int64_t first_step);

  // After step `step`: the run's planned steps once the pace has been measured long enough, else 0.
  int64_t plan(int64_t step, int64_t max_steps) const;
  double seconds() const;           // since the clock started
  double budget_seconds() const { return budget_s_; }
  int64_t first_step() const { return first_step_; }

 private:
  double budget_s_;
  int64_t first_step_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace performer
