// The isoFLOP study: its fits (against laws with known answers), the run config that meets a FLOP budget,
// the option parsers, the published reference law, and `performer scaling` end to end on the tiny config
// (a row per run, the learning rate carried from the smallest budget, table, fit and plot, --resume).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "analysis/scaling_fit.h"
#include "experiments/scaling.h"
#include "io/csv.h"
#include "test_util.h"
#include "train/flops.h"
#include "util/error.h"
#include "util/files.h"

using namespace performer;
using namespace performer::testing;

namespace {

std::string tiny_path() { return project_root() + "/configs/tiny.yaml"; }

std::string scaling_args() {
  return "scaling -c " + tiny_path() + " --set data.train=" + data_path("real_excerpt.fasta") + " ";
}

}  // namespace

// Points on y = 3.2 x^-0.05 give back a and b (to rounding); bad inputs are refused by name.
TEST(ScalingFit, PowerLawRecoversAKnownLaw) {
  std::vector<double> x{1e13, 3e13, 1e14, 1e15}, y;
  for (double v : x) y.push_back(3.2 * std::pow(v, -0.05));
  const PowerLaw p = fit_power_law(x, y, "test");
  EXPECT_NEAR(p.a, 3.2, 3.2 * 1e-9);
  EXPECT_NEAR(p.b, -0.05, 1e-11);
  EXPECT_NEAR(p.at(4e15), 3.2 * std::pow(4e15, -0.05), 1e-9);
  EXPECT_NEAR(p.solve(p.at(2e14)), 2e14, 2e14 * 1e-9);
  EXPECT_THROW(fit_power_law({1e13}, {2.0}, "one point"), Error);
  EXPECT_THROW(fit_power_law({1e13, 1e13}, {2.0, 2.1}, "same x"), Error);
  EXPECT_THROW(fit_power_law({1e13, 1e14}, {2.0, -1.0}, "negative"), Error);
}

// Loss = 2 + 0.1 (ln N - ln 5e5)^2 at sizes around 5e5: the vertex is found; with the vertex outside the sizes
// tried, a downward parabola, or two runs, the best run tried is the answer (no extrapolation).
TEST(ScalingFit, IsoFlopMinimumIsTheParabolaVertexInsideTheSizesTried) {
  auto loss = [](double n, double centre) { return 2 + 0.1 * std::pow(std::log(n) - std::log(centre), 2); };
  const std::vector<double> sizes{1e5, 3e5, 1e6, 3e6};
  std::vector<double> losses;
  for (double n : sizes) losses.push_back(loss(n, 5e5));
  IsoFlopMinimum m = isoflop_minimum(sizes, losses);
  EXPECT_TRUE(m.interpolated);
  EXPECT_NEAR(m.size, 5e5, 5e5 * 1e-6);
  EXPECT_NEAR(m.loss, 2.0, 1e-9);

  losses.clear();
  for (double n : sizes) losses.push_back(loss(n, 1e8));  // the vertex far above the largest size
  m = isoflop_minimum(sizes, losses);
  EXPECT_FALSE(m.interpolated);
  EXPECT_EQ(m.size, 3e6);
  EXPECT_EQ(m.loss, losses.back());

  m = isoflop_minimum(sizes, {2.0, 2.5, 2.6, 2.1});  // opens downward
  EXPECT_FALSE(m.interpolated);
  EXPECT_EQ(m.size, 1e5);
  m = isoflop_minimum({1e5, 3e5}, {2.4, 2.3});
  EXPECT_FALSE(m.interpolated);
  EXPECT_EQ(m.size, 3e5);
  EXPECT_THROW(isoflop_minimum({}, {}), Error);
}

// A run's steps are the fewest that reach the budget: steps x FLOPs per step >= C > (steps - 1) x FLOPs per step;
// the head width and the d_ff ratio of the base stay.
TEST(Scaling, RunConfigMeetsTheBudgetWithTheBaseHeadWidth) {
  // d 64, 4 heads (d_head 16), d_ff 128; a time budget, which a FLOP budget's run does not take
  const RunConfig base = load_config(tiny_path(), {"train.budget_minutes=5"});
  const RunConfig c = scaling_run_config(base, 1e11, {3, 128}, 2e-3, "/tmp/x");
  EXPECT_EQ(c.model.layers, 3);
  EXPECT_EQ(c.model.d_model, 128);
  EXPECT_EQ(c.model.heads, 8);
  EXPECT_EQ(c.model.d_ff, 256);
  EXPECT_EQ(c.train.lr, 2e-3);
  EXPECT_EQ(c.train.max_minutes, 0);
  EXPECT_EQ(c.train.budget_minutes, 0);
  EXPECT_EQ(c.output.dir, "/tmp/x");
  const double per_step = training_flops_per_token(c.model, c.data.max_len) * static_cast<double>(c.data.tokens_per_batch);
  EXPECT_GE(static_cast<double>(c.train.steps) * per_step, 1e11);
  EXPECT_LT(static_cast<double>(c.train.steps - 1) * per_step, 1e11);
  EXPECT_LE(c.train.warmup_steps, c.train.steps / 10);
  try {
    scaling_run_config(base, 1e11, {2, 50}, 1e-3, "/tmp/x");
    FAIL() << "d_model 50 with head width 16 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2x50"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("head width 16"), std::string::npos) << e.what();
  }
}

TEST(Scaling, ParsersTakeWholeItemsOnly) {
  const auto shapes = parse_shapes("4x128,2x96", "--shapes");
  ASSERT_EQ(shapes.size(), 2u);
  EXPECT_EQ(shapes[0].name(), "4x128");
  EXPECT_EQ(shapes[1].layers, 2);
  EXPECT_EQ(shapes[1].d_model, 96);
  for (const char* bad : {"4x", "x128", "4*128", "0x64", "4x12.5", "4x128x2"}) {
    try {
      parse_shapes(std::string("2x64,") + bad, "--shapes");
      FAIL() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("--shapes: '") + bad + "'"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(parse_number_list("1e13,3.5e13", "--budgets"), (std::vector<double>{1e13, 3.5e13}));
  for (const char* bad : {"abc", "-1", "0", "1e13x", "nan", "inf"})
    EXPECT_THROW(parse_number_list(bad, "--budgets"), Error) << bad;
}

// The published law reads 2.40 nats at 1e18 FLOPs in the paper; the fitted coefficients give it within 0.03,
// and the law falls with compute.
TEST(Scaling, PublishedLawMatchesThePapersFigure) {
  EXPECT_NEAR(published_mlm_loss(1e18), 2.40, 0.03);
  EXPECT_GT(published_mlm_loss(1e14), published_mlm_loss(1e15));
}

// Two budgets x two shapes, two learning rates at the smallest: six runs, each a row with its FLOPs within one
// step of the budget, the larger budget using each shape's best rate on valid; the table, fit and plot; then
// --resume keeps every run.
TEST(ScalingCli, StudyRunsEveryRunAndResumes) {
  TempDir dir;
  const std::string args = scaling_args() + "--budgets 2e9,6e9 --shapes 1x32,2x64 --lrs 1e-3,4e-3 --query " +
                           data_path("real_excerpt.fasta") + " --out " + dir.path();
  const CliRun r = run_performer(args);
  ASSERT_EQ(r.status, 0) << r.out;
  const CsvTable t = CsvTable::read(dir.file("results.csv"));
  ASSERT_EQ(t.rows(), 6u) << r.out;
  std::map<std::string, std::pair<double, double>> best_small;  // shape -> (valid perplexity, lr) at 2e9
  std::map<std::string, double> large_lr;
  const RunConfig base = load_config(tiny_path());
  for (size_t i = 0; i < t.rows(); ++i) {
    const std::string shape = t.text(i, "layers") + "x" + t.text(i, "d_model");
    SCOPED_TRACE(shape + " at " + t.text(i, "budget"));
    ASSERT_EQ(t.text(i, "status"), "ok") << t.text(i, "note");
    const double budget = t.number(i, "budget"), ppl = t.number(i, "valid_perplexity");
    const RunConfig c = scaling_run_config(base, budget, {t.integer(i, "layers"), t.integer(i, "d_model")}, 1e-3, "x");
    const double per_step = training_flops_per_token(c.model, c.data.max_len) * static_cast<double>(c.data.tokens_per_batch);
    EXPECT_EQ(t.integer(i, "steps"), c.train.steps);
    EXPECT_LE(t.number(i, "flops"), budget + per_step);
    EXPECT_GT(t.number(i, "flops"), 0.3 * budget);  // real tokens: rows are padded to their longest protein
    EXPECT_GT(ppl, 1.0);
    EXPECT_LE(t.number(i, "valid_low"), ppl);
    EXPECT_GE(t.number(i, "valid_high"), ppl);
    EXPECT_TRUE(std::isfinite(t.number(i, "query_perplexity")));
    if (budget < 3e9) {
      auto it = best_small.find(shape);
      if (it == best_small.end() || ppl < it->second.first) best_small[shape] = {ppl, t.number(i, "lr")};
    } else {
      large_lr[shape] = t.number(i, "lr");
    }
  }
  ASSERT_EQ(large_lr.size(), 2u);
  for (const auto& [shape, lr] : large_lr) EXPECT_EQ(lr, best_small[shape].second) << shape;
  EXPECT_NE(r.out.find("valid ppl (95%)"), std::string::npos) << r.out;
  for (const char* f : {"fit.txt", "scaling.png"}) EXPECT_TRUE(std::filesystem::exists(dir.file(f))) << f;
  EXPECT_NE(read_text(dir.file("fit.txt")).find("frontier: valid loss = "), std::string::npos);

  const CliRun again = run_performer(args + " --resume");
  ASSERT_EQ(again.status, 0) << again.out;
  size_t kept = 0;
  for (size_t p = again.out.find("kept"); p != std::string::npos; p = again.out.find("kept", p + 1)) ++kept;
  EXPECT_EQ(kept, 6u) << again.out;
}

TEST(ScalingCli, BadOptionsFailWithOneLine) {
  TempDir dir;
  CliRun r = run_performer(scaling_args() + "--shapes 4x --out " + dir.path());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--shapes: '4x' is not LAYERSxD_MODEL"), std::string::npos) << r.out;
  r = run_performer(scaling_args() + "--budgets 1e13,0 --out " + dir.path());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--budgets: '0' is not a positive number"), std::string::npos) << r.out;
  r = run_performer(scaling_args() + "--shapes 2x50 --out " + dir.path());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("head width 16"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("results.csv")));
}

// eval --paired-with: the same checkpoint against its own earlier scores differs by 0 on every protein; a file
// that is not a per_sequence.tsv is refused with one line naming it.
TEST(EvalCli, PairedWithItsOwnScoresDiffersByZero) {
  TempDir dir;
  const std::string run = dir.file("run");
  CliRun t = run_performer("train --config " + tiny_path() + " --set output.dir=" + run + " --set data.train=" +
                           data_path("real_excerpt.fasta") + " --set train.steps=2 --set eval.every=0");
  ASSERT_EQ(t.status, 0) << t.out;
  const std::string eval = "eval --checkpoint " + run + "/best.h5 --input " + data_path("real_excerpt.fasta") +
                           " --keep-train-overlap ";
  CliRun first = run_performer(eval + "--out " + dir.file("first"));
  ASSERT_EQ(first.status, 0) << first.out;
  CliRun second = run_performer(eval + "--paired-with " + dir.file("first") + " --out " + dir.file("second"));
  ASSERT_EQ(second.status, 0) << second.out;
  const std::string summary = read_text(dir.file("second/summary.json"));
  const auto j = nlohmann::json::parse(summary);
  ASSERT_TRUE(j.contains("paired")) << summary;
  EXPECT_GT(j["paired"]["proteins"].get<int64_t>(), 20);
  EXPECT_NEAR(j["paired"]["difference"].get<double>(), 0.0, 1e-9);
  EXPECT_NEAR(j["paired"]["ci95"][0].get<double>(), 0.0, 1e-9);
  EXPECT_NEAR(j["paired"]["ci95"][1].get<double>(), 0.0, 1e-9);
  EXPECT_NE(second.out.find("paired with"), std::string::npos) << second.out;

  write_text_file(dir.file("bad.tsv"), "name\tvalue\n");
  CliRun bad = run_performer(eval + "--paired-with " + dir.file("bad.tsv"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find(dir.file("bad.tsv") + ": line 1"), std::string::npos) << bad.out;
}
