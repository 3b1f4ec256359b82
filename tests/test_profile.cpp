// Where the time goes (util/op_profile.h): self times of nested operator intervals, LibTorch's profiler
// around a region, and `bench train --profile` end to end.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "test_runs.h"
#include "test_util.h"
#include "util/error.h"
#include "util/op_profile.h"

using namespace performer;
using namespace performer::testing;

namespace {
const OpTime* find(const std::vector<OpTime>& ops, const std::string& name) {
  for (const OpTime& op : ops)
    if (op.name == name) return &op;
  return nullptr;
}
}  // namespace

TEST(OpProfile, SelfTimeIsDurationLessDirectChildrenAndTotalCountsOutermostCallsOnce) {
  // Thread 1: A [0,100) holds B [10,40) (which holds C [15,25)) and B [50,60); A [60,70) nested in A.
  // Thread 2: A [5,35), overlapping thread 1 in time but not nested in it.
  const std::vector<OpEvent> events{{1, 0, 100, "A"},  {1, 10, 30, "B"}, {1, 15, 10, "C"}, {1, 50, 10, "B"},
                                    {1, 60, 10, "A"},  {2, 5, 30, "A"}};
  const std::vector<OpTime> ops = self_times(events);
  ASSERT_EQ(ops.size(), 3u);
  const OpTime *a = find(ops, "A"), *b = find(ops, "B"), *c = find(ops, "C");
  ASSERT_TRUE(a && b && c);
  // A: 100 - 30 - 10 - 10 on thread 1, the inner A's 10, and 30 on thread 2.
  EXPECT_NEAR(a->self_s, (50 + 10 + 30) * 1e-9, 1e-15);
  EXPECT_NEAR(b->self_s, (20 + 10) * 1e-9, 1e-15);
  EXPECT_NEAR(c->self_s, 10e-9, 1e-15);
  EXPECT_EQ(a->calls, 3);
  EXPECT_EQ(b->calls, 2);
  EXPECT_NEAR(a->total_s, 130e-9, 1e-15);  // the nested A is inside an outer A: not counted twice
  EXPECT_NEAR(b->total_s, 40e-9, 1e-15);
  // Largest self time first; the self times add up to the time covered.
  EXPECT_EQ(ops[0].name, "A");
  EXPECT_EQ(ops[1].name, "B");
  EXPECT_NEAR(a->self_s + b->self_s + c->self_s, 130e-9, 1e-15);
  const std::string table = describe_top_ops(ops, 130e-9, 2);
  EXPECT_NE(table.find("69.2%"), std::string::npos) << table;  // A: 90 of 130
  EXPECT_EQ(table.find(" C "), std::string::npos) << table;     // only the top 2
}

TEST(OpProfile, MatrixProductSecondsSumsTheGemmOperatorsOnly) {
  const std::vector<OpTime> ops{{"aten::mm", 4, 2.0, 2.0},          {"aten::addmm", 2, 1.0, 1.5},
                                {"aten::bmm", 9, 0.25, 0.25},       {"aten::baddbmm_", 1, 8.0, 8.0},
                                {"aten::gelu_backward", 3, 4.0, 4.0}, {"AddmmBackward0", 2, 0.5, 3.0},
                                {"aten::copy_", 5, 16.0, 16.0},     {"performer::favor_core", 1, 32.0, 40.0}};
  // mm + addmm + bmm + the in-place baddbmm_ (the chunked FAVOR core's).
  EXPECT_DOUBLE_EQ(matrix_product_seconds(ops), 2.0 + 1.0 + 0.25 + 8.0);
  EXPECT_FALSE(is_matrix_product("AddmmBackward0"));  // an autograd node: its products are its aten::mm children
  EXPECT_FALSE(is_matrix_product("aten::gelu_backward"));
}

TEST(OpProfile, RecordsTheOperatorsOfARegionAndSavesATrace) {
  OpProfile p;
  try {
    p.start();
  } catch (const Error& e) {
    GTEST_SKIP() << e.what();  // a LibTorch built without kineto
  }
  const at::Tensor a = torch::randn({128, 128});
  at::Tensor x = a;
  for (int i = 0; i < 5; ++i) x = at::mm(x, a).div_(16.0);
  const double s = x.sum().item<double>();
  p.stop();
  EXPECT_TRUE(std::isfinite(s));
  const OpTime* mm = find(p.ops(), "aten::mm");
  ASSERT_NE(mm, nullptr);
  EXPECT_EQ(mm->calls, 5);
  EXPECT_GT(mm->self_s, 0);
  double self = 0;
  for (const OpTime& op : p.ops()) self += op.self_s;
  EXPECT_LE(self, p.region_seconds() * 1.01);  // one thread: the operators fit in the region's wall time
  EXPECT_THROW(p.stop(), Error);

  try {
    OpProfile::require_traces();
  } catch (const Error& e) {
    GTEST_SKIP() << e.what();  // LibTorch 1.13 without kineto: profiles, cannot save
  }
  TempDir dir;
  p.save(dir.file("trace.json"));
  const nlohmann::json trace = nlohmann::json::parse(read_text(dir.file("trace.json")));
  int mm_events = 0;
  for (const auto& e : trace.at("traceEvents"))
    if (e.value("name", "") == "aten::mm") ++mm_events;
  EXPECT_EQ(mm_events, 5);
}

// `bench train --profile`: the operator table after the figures, and the trace written.
TEST(OpProfile, BenchTrainProfileListsOperatorsAndWritesTheTrace) {
  TempDir dir;
  const std::string trace = dir.file("trace.json");
  const CliRun r = run_performer("bench train -c " + tiny_config() + " " + tiny_sets(dir.file("run")) +
                                 " --steps 2 --warmup 1 --profile " + trace);
  if (r.out.find("cannot write profiler traces") != std::string::npos) {
    EXPECT_NE(r.status, 0);
    EXPECT_EQ(r.out.find("tokens/s"), std::string::npos) << "refused before any step";
    GTEST_SKIP() << r.out;
  }
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("tokens/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("operators by self time"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("aten::"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("matrix products (aten::mm"), std::string::npos) << r.out;
  const nlohmann::json t = nlohmann::json::parse(read_text(trace));
  bool forward = false;
  for (const auto& e : t.at("traceEvents")) forward = forward || e.value("name", "") == "performer::forward";
  EXPECT_TRUE(forward) << "the training step's named regions are in the trace";

  // The trace may not overwrite an input.
  const CliRun bad = run_performer("bench train -c " + tiny_config() + " " + tiny_sets(dir.file("run")) +
                                   " --steps 1 --warmup 0 --profile " + tiny_config());
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("--profile"), std::string::npos) << bad.out;
}
