// train.budget_minutes: the steps planned from the measured pace, lowered (never raised) at later checks,
// the schedule decayed by the budget's end, and an exact resume of a run that planned.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "model/encoder.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/time_budget.h"
#include "train/trainer.h"
#include "test_util.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

TEST(TimeBudget, StepsWithinBudget) {
  // 100 steps in 10 s (0.1 s a step) with 50 s of a 60 s budget left: 500 more.
  EXPECT_EQ(steps_within_budget(100, 100, 10.0, 60.0, 100000), 600);
  // Resumed at step 1,000: only this invocation's 100 steps set the pace.
  EXPECT_EQ(steps_within_budget(1100, 100, 10.0, 60.0, 100000), 1600);
  // Never above train.steps.
  EXPECT_EQ(steps_within_budget(100, 100, 10.0, 60.0, 400), 400);
  // A spent budget ends the run at the step it is at.
  EXPECT_EQ(steps_within_budget(100, 100, 70.0, 60.0, 100000), 100);
  // Whole steps only: 49.99 s left at 0.1 s a step is 499 more.
  EXPECT_EQ(steps_within_budget(100, 100, 10.01, 60.0, 100000), 599);
  // No pace yet: nothing is planned below train.steps.
  EXPECT_EQ(steps_within_budget(0, 0, 0.0, 60.0, 5000), 5000);
}

TEST(TimeBudget, PlansOnlyAfterTheCalibrationWindow) {
  const TimeBudget off(0, 0);
  EXPECT_EQ(off.plan(1000, 5000), 0);
  const TimeBudget budget(10.0, 0);  // 600 s: the pace is measured for 60 s first
  EXPECT_EQ(budget.plan(kMinCalibrationSteps + 5, 5000), 0) << "planned before a tenth of the budget had passed";
  const TimeBudget tiny(1e-4, 0);  // 6 ms: the window has passed, but too few steps have run
  while (tiny.seconds() < 0.01) {
  }
  EXPECT_EQ(tiny.plan(kMinCalibrationSteps - 1, 5000), 0);
  EXPECT_EQ(tiny.plan(kMinCalibrationSteps, 5000), kMinCalibrationSteps) << "a spent budget ends the run now";
}

TEST(TimeBudget, ChecksThePlanEveryTenthOfTheRunAndOnlyLowersIt) {
  // Every planned / 10 steps (at least kMinCalibrationSteps apart), never at or after the last step.
  EXPECT_TRUE(replan_due(250, 2500));
  EXPECT_TRUE(replan_due(2250, 2500));
  EXPECT_FALSE(replan_due(251, 2500));
  EXPECT_FALSE(replan_due(2500, 2500));
  EXPECT_FALSE(replan_due(100, 0)) << "no plan yet";
  EXPECT_TRUE(replan_due(2 * kMinCalibrationSteps, 30));
  EXPECT_FALSE(replan_due(3, 30));
  // A budget with room to spare keeps the plan: a plan is never raised, so the schedule never jumps up.
  const TimeBudget roomy(1000.0, 0);
  EXPECT_EQ(roomy.replan(50, 80), 80);
  // A spent budget (6 ms, 10 ms gone) lowers the plan to the step the run is at: it ends now.
  const TimeBudget spent(1e-4, 0);
  while (spent.seconds() < 0.01) {
  }
  EXPECT_EQ(spent.replan(50, 80), 50);
  // Resumed at step 40 (the clock started there): only this invocation's steps set the pace.
  const TimeBudget resumed(1e-4, 40);
  while (resumed.seconds() < 0.01) {
  }
  EXPECT_EQ(resumed.replan(50, 80), 50);
  EXPECT_EQ(TimeBudget(0, 0).replan(50, 80), 80) << "no budget, no change";
}

namespace {

TrainState state_of(const std::string& checkpoint) {
  RunConfig c = parse_config(checkpoint_config(checkpoint), checkpoint);
  Encoder m(c.model);
  return load_checkpoint(checkpoint, m, nullptr, false);
}

// A tiny run far longer than its budget: 100,000 steps of cosine schedule in 12 seconds (a step of the tiny
// model takes 10-20 ms on 2 idle cores, up to 0.3 s under ctest -j2: the plan then comes after its 10 steps
// and 3 s, with about 30 steps to go).
const std::vector<std::string> kBudgetRun = {"train.steps=100000", "train.budget_minutes=0.2", "train.schedule=cosine",
                                             "train.warmup_steps=2",   "eval.every=0",            "model.dropout=0"};

}  // namespace

TEST(TimeBudget, LowersTheStepsSoTheScheduleEndsWithinTheBudget) {
  TempDir dir;
  std::vector<std::string> sets = kBudgetRun;
  sets.push_back("output.checkpoint_every=0");
  const RunConfig c = tiny_run_config(dir.path(), sets);
  TrainOptions o;
  o.progress_bar = false;
  const TrainResult r = train(c, o);
  EXPECT_EQ(stop_reason_name(r.stop_reason), "completed") << "the budget ends the run as completed, not cut off";
  EXPECT_GE(r.step, kMinCalibrationSteps);
  EXPECT_LT(r.step, 100000);
  // The schedule was fitted to the planned steps: the learning rate decays to (almost) 0 at the last step,
  // where the cosine over 100,000 steps would still be at its peak.
  const auto lr = csv_column(dir.file("metrics.csv"), 4);
  ASSERT_EQ(static_cast<int64_t>(lr.size()), r.step);
  for (size_t i = 3; i < lr.size(); ++i) EXPECT_LE(lr[i], lr[i - 1] * (1 + 1e-9)) << "step " << i + 1;
  // The plan is in the log (lowered later, should the pace have slowed after the first plan, to the step
  // the run ended at) and in the final checkpoint.
  const std::string log = read_text(dir.file("train.log"));
  EXPECT_NE(log.find("train.budget_minutes 0.2: train.steps 100000 -> "), std::string::npos) << log;
  EXPECT_NE(log.find(" -> " + std::to_string(r.step) + " ("), std::string::npos) << log;
  // The learning rate decayed to (almost) 0 at the last step, unless a check found the budget already spent
  // and ended the run at the step it was at (a machine slowed by far more than a tenth of the budget holds).
  if (log.find("at step " + std::to_string(r.step) + ", ") == std::string::npos) {
    EXPECT_LT(lr.back(), 0.05 * c.train.lr) << "last of " << r.step << " steps";
  }
  EXPECT_EQ(state_of(checkpoint_path(dir.path(), r.step)).planned_steps, r.step);
}

TEST(TimeBudget, AResumedRunKeepsThePlannedStepsAndIsExact) {
  TempDir a, b;
  std::vector<std::string> sets = kBudgetRun;
  sets.push_back("output.checkpoint_every=1");
  sets.push_back("output.keep_last=100000");
  TrainOptions o;
  o.progress_bar = false;
  const TrainResult whole = train(tiny_run_config(a.path(), sets), o);
  ASSERT_EQ(stop_reason_name(whole.stop_reason), "completed");
  // The plan in force at the last step: the first plan, or the last re-plan before that step (one at the last
  // step itself ends the run there, after the step). A check comes before its step's checkpoint, so that
  // checkpoint holds the plan the run goes on with.
  const std::string log = read_text(a.file("train.log"));
  int64_t last_replan = 0;
  for (size_t at = log.find(": at step "); at != std::string::npos; at = log.find(": at step ", at + 1)) {
    const int64_t step = std::stoll(log.substr(at + 10));
    if (step < whole.step) last_replan = std::max(last_replan, step);
  }
  // The first checkpoint from it on (and after the first plan), before the end.
  std::string mid;
  int64_t mid_step = 0;
  for (int64_t step = std::max<int64_t>(last_replan, 1); step < whole.step && mid.empty(); ++step)
    if (state_of(checkpoint_path(a.path(), step)).planned_steps > 0) mid = checkpoint_path(a.path(), mid_step = step);
  ASSERT_FALSE(mid.empty()) << "no checkpoint between the plan and step " << whole.step << "\n" << log;
  const int64_t planned = state_of(mid).planned_steps;
  EXPECT_GE(planned, whole.step);
  // Resumed from it in another folder (the budget's clock starts again there, and a resumed run plans no
  // more): it keeps the plan, and at the whole run's last step it holds the same parameters, bit for bit.
  TrainOptions resume = o;
  resume.resume = mid;
  resume.stop_after = whole.step - mid_step;
  const TrainResult rest = train(tiny_run_config(b.path(), sets), resume);
  EXPECT_EQ(rest.step, whole.step);
  EXPECT_EQ(state_of(checkpoint_path(b.path(), whole.step)).planned_steps, planned);
  EXPECT_NE(read_text(b.file("train.log")).find("train.steps " + std::to_string(planned) + " as train.budget_minutes planned"),
            std::string::npos);
  const RunConfig c = tiny_run_config(a.path(), sets);
  Encoder ma(c.model), mb(c.model);
  load_checkpoint(checkpoint_path(a.path(), whole.step), ma, nullptr, false);
  load_checkpoint(checkpoint_path(b.path(), whole.step), mb, nullptr, false);
  auto pa = ma->named_parameters(), pb = mb->named_parameters();
  for (auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}
