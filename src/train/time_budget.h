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
// so the schedule decays to 0 at the budget's end. The first minute's pace can be faster than the run's
// (evaluations and checkpoints come later; a shared machine slows down), so the plan is checked again every
// tenth of the planned steps with the pace of the whole invocation so far, and lowered (never raised) when
// the rest would overrun the budget:
//
//   steps'' = min(steps', step + floor((budget - elapsed) / (elapsed / steps done)))
//
// A lowered plan shortens the decay's remainder: the learning rate steps down once, by what the shorter
// schedule asks at that step (a cosine from 2,677 to 2,600 steps at step 1,500: from 1.30e-3 to 1.22e-3
// at lr 3e-3); a check that finds the budget spent ends the run at that step, its rate not yet at 0. The
// planned steps are stored in every later checkpoint (TrainState::planned_steps; a check comes before its
// step's checkpoint, so each holds the plan the run goes on with), and a resumed run keeps them and plans no
// more: exact up to where the uninterrupted run would have lowered its plan again, and after that bounded
// by train.max_minutes only. An invocation resumed before its run planned counts the budget from its own
// start.
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

// The plan is checked again this many times over a run (every planned_steps / kReplansPerRun steps).
constexpr int64_t kReplansPerRun = 10;
// Whether step `step` is one where a run with `planned_steps` planned checks its plan again (a function of
// agreed values only, so that every rank of a data-parallel run checks at the same steps).
bool replan_due(int64_t step, int64_t planned_steps);

class TimeBudget {
 public:
  // The clock starts now, at step `first_step` of the run. budget_minutes 0: no budget.
  TimeBudget(double budget_minutes, int64_t first_step);

  // After step `step`: the run's planned steps once the pace has been measured long enough, else 0.
  int64_t plan(int64_t step, int64_t max_steps) const;
  // After step `step` of a run that planned `planned_steps`: those, or fewer where the pace of this
  // invocation so far would overrun the budget.
  int64_t replan(int64_t step, int64_t planned_steps) const;
  double seconds() const;           // since the clock started
  double budget_seconds() const { return budget_s_; }
  int64_t first_step() const { return first_step_; }

 private:
  double budget_s_;
  int64_t first_step_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace performer
