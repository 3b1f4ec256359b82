// The one-cell-per-child harness (experiments/cell.h): the status enum, the YAML result document, the
// parent's verdict on children that report, crash, exit without a report, or run past their deadline; and
// `performer bench attention`, its second user, end to end.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "model/exact_attention.h"
#include "experiments/cell.h"
#include "test_util.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

// A child that runs `script` in /bin/sh; the harness's "--report PATH" arrive as $1 and $2.
CellCommand shell_cell(const std::string& script, const std::string& report_path = "") {
  CellCommand c;
  c.argv = {"/bin/sh", "-c", script, "sh"};
  c.report_path = report_path;
  return c;
}

// The harness's temporary reports (<tmp>/performer-cell-<pid>-<n>.yaml) present now.
std::set<std::string> temporary_reports() {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path()))
    if (e.path().filename().string().rfind("performer-cell-", 0) == 0) names.insert(e.path().filename().string());
  return names;
}


}  // namespace

TEST(CellStatus, NamesRoundTripAndUnknownIsRejected) {
  for (CellStatus s : {CellStatus::kOk, CellStatus::kOom, CellStatus::kTimeout, CellStatus::kError})
    EXPECT_EQ(parse_cell_status(cell_status_name(s)), s) << cell_status_name(s);
  EXPECT_EQ(cell_status_name(CellStatus::kOk), "ok");
  EXPECT_EQ(cell_status_name(CellStatus::kOom), "OOM");
  EXPECT_EQ(cell_status_name(CellStatus::kTimeout), "TIMEOUT");
  EXPECT_EQ(cell_status_name(CellStatus::kError), "error");
  for (const char* bad : {"fine", "oom", "Ok", "", "ok "}) {
    try {
      parse_cell_status(bad);
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(CellReport, DocumentRoundTripsWithNaNAndRejectsMalformedOnes) {
  CellReport a{CellStatus::kError, "line one: \"quoted\", a colon, a # and unicode \xc3\xa9", {}};
  a.figures = {{"median_ms", 12.345678901234}, {"peak_bytes", 3.5e9}, {"strict_perplexity", std::nan("")},
               {"big", 1e300}, {"tiny", 1e-300}, {"rows", 7}};
  const std::string text = format_cell_report(a);
  EXPECT_NE(text.find("status: error"), std::string::npos) << text;
  const CellReport b = parse_cell_report(text, "r.yaml");
  EXPECT_EQ(b.status, a.status);
  EXPECT_EQ(b.note, a.note);
  ASSERT_EQ(b.figures.size(), a.figures.size()) << text;
  for (const auto& [name, value] : a.figures) {
    if (std::isnan(value))
      EXPECT_TRUE(std::isnan(b.figure(name))) << name;
    else
      EXPECT_EQ(b.figure(name), value) << name << " in\n" << text;  // exact: no digits lost
  }
  EXPECT_THROW(b.figure("absent"), Error);
  // Malformed documents name their place.
  for (const char* bad : {"", "just words", "[1, 2]", "status: [ok]", "status: fine", "note: no status",
                          "status: ok\nfigures: [1, 2]", "status: ok\nfigures: {x: abc}", "status: ok\nfigures: {"}) {
    try {
      parse_cell_report(bad, "cells/L64/result.yaml");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("cells/L64/result.yaml: ", 0), 0u) << e.what();
    }
  }
  const CellReport minimal = parse_cell_report("status: TIMEOUT", "r.yaml");
  EXPECT_EQ(minimal.status, CellStatus::kTimeout);
  EXPECT_TRUE(minimal.note.empty() && minimal.figures.empty());
}

TEST(CellHarness, ReadsTheChildsReport) {
  TempDir dir;
  // The child writes its document with write_cell_report's format; here by hand, as a foreign child would.
  CellOutcome o = run_cell(shell_cell("echo training...; printf 'status: OOM\\nnote: \"out of memory\"\\n"
                                      "figures:\\n  peak_bytes: 2.5e9\\n  strict_accuracy: .nan\\n' > \"$2\"",
                                      dir.file("result.yaml")));
  EXPECT_TRUE(o.reported);
  EXPECT_EQ(o.report.status, CellStatus::kOom);
  EXPECT_EQ(o.report.note, "out of memory");
  EXPECT_EQ(o.report.figure("peak_bytes"), 2.5e9);
  EXPECT_TRUE(std::isnan(o.report.figure("strict_accuracy")));
  EXPECT_EQ(o.child.exit_code, 0);
  EXPECT_NE(o.child.output.find("training..."), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir.file("result.yaml")));  // a given report path is kept

  // write_cell_report (the child side) produces what run_cell reads.
  const CellReport sent{CellStatus::kOk, "", {{"median_ms", 1.5}}};
  write_cell_report(dir.file("sent.yaml"), sent);
  EXPECT_EQ(parse_cell_report(read_text(dir.file("sent.yaml")), "sent.yaml").figure("median_ms"), 1.5);
  o = run_cell(shell_cell("cp '" + dir.file("sent.yaml") + "' \"$2\""));
  EXPECT_TRUE(o.reported);
  EXPECT_EQ(o.report.status, CellStatus::kOk);
  EXPECT_EQ(o.report.figure("median_ms"), 1.5);
}

TEST(CellHarness, ChildWithoutReportIsJudgedByHowItEnded) {
  TempDir dir;
  // A report left by an earlier run does not stand in for this one.
  write_file(dir.file("result.yaml"), "status: ok\nfigures: {median_ms: 1}\n");
  CellOutcome o = run_cell(shell_cell("echo dying; exit 3", dir.file("result.yaml")));
  EXPECT_FALSE(o.reported);
  EXPECT_EQ(o.report.status, CellStatus::kError);
  EXPECT_EQ(o.report.note, "no result (exit 3)");
  EXPECT_NE(o.child.output.find("dying"), std::string::npos);
  // Killed by SIGKILL (the kernel's OOM killer): OOM; by another signal: error.
  o = run_cell(shell_cell("kill -9 $$"));
  EXPECT_EQ(o.report.status, CellStatus::kOom);
  EXPECT_EQ(o.report.note, "killed by signal 9");
  o = run_cell(shell_cell("kill -SEGV $$"));
  EXPECT_EQ(o.report.status, CellStatus::kError);
  EXPECT_EQ(o.report.note, "killed by signal 11");
  // Past its deadline: killed and TIMEOUT, even had it written a report.
  CellCommand slow = shell_cell("printf 'status: ok\\n' > \"$2\"; exec sleep 30");
  slow.timeout_seconds = 0.5;
  o = run_cell(slow);
  EXPECT_FALSE(o.reported);
  EXPECT_TRUE(o.child.timed_out);
  EXPECT_EQ(o.report.status, CellStatus::kTimeout);
  EXPECT_EQ(o.report.note.rfind("no result within ", 0), 0u) << o.report.note;
  // A malformed report: error, naming the report.
  o = run_cell(shell_cell("echo 'status: great' > \"$2\"", dir.file("bad.yaml")));
  EXPECT_FALSE(o.reported);
  EXPECT_EQ(o.report.status, CellStatus::kError);
  EXPECT_NE(o.report.note.find(dir.file("bad.yaml") + ": cell status 'great'"), std::string::npos) << o.report.note;
}

// `bench attention` on CPU: every cell in a child reporting through the harness; a cell predicted beyond the
// limit is OOM without running, and the sweep goes on. Where exact attention stores its L x L matrices
// (LibTorch 1.x) that is exact at L = 20000 while FAVOR runs; where it is fused (2.x) both need memory
// linear in L, and at L = 10^6 both are predicted beyond the limit.
TEST(BenchAttentionCli, CellsRunInChildrenAndReport) {
  TempDir dir;
  const std::set<std::string> reports_before = temporary_reports();
  const bool quadratic = exact_attention_stores_scores();
  const std::string big = quadratic ? "20000" : "1000000";
  const CliRun r = run_performer("--threads 1 bench attention --lengths 32," + big + " --kinds exact,favor-relu --heads 1 "
                                 "--dim 8 --features 8 --repeats 1 --warmup 0 --memory-limit 200MB --csv " +
                                 dir.file("bench.csv"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("speed-up vs exact"), std::string::npos) << r.out;
  if (quadratic) {
    EXPECT_NE(r.out.find("favor-relu runs, exact OOM"), std::string::npos) << r.out;
  }
  std::ifstream csv(dir.file("bench.csv"));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "device,kind,causal,batch,heads,length,dim,features,status,median_ms,peak_bytes,predicted_bytes,note,"
                  "precision,favor_core,favor_chunk");
  std::vector<std::string> rows;
  while (std::getline(csv, line)) rows.push_back(line);
  ASSERT_EQ(rows.size(), 4u) << r.out;
  EXPECT_EQ(rows[0].rfind("cpu,exact,0,1,1,32,8,8,ok,", 0), 0u) << rows[0];
  EXPECT_EQ(rows[1].rfind("cpu,favor-relu,0,1,1,32,8,8,ok,", 0), 0u) << rows[1];
  EXPECT_EQ(rows[1].substr(rows[1].size() - 12), ",fp32,lean,0") << rows[1];  // the default FAVOR core
  EXPECT_EQ(rows[2].rfind("cpu,exact,0,1,1," + big + ",8,8,OOM,", 0), 0u) << rows[2];
  EXPECT_NE(rows[2].find("predicted"), std::string::npos) << rows[2];
  EXPECT_EQ(rows[3].rfind("cpu,favor-relu,0,1,1," + big + ",8,8," + (quadratic ? "ok," : "OOM,"), 0), 0u) << rows[3];
  // No temporary report is left behind.
  for (const auto& name : temporary_reports()) EXPECT_TRUE(reports_before.count(name)) << name;
}

TEST(BenchAttentionCli, UnknownKindFailsWithOneLine) {
  const CliRun r = run_performer("bench attention --lengths 32 --kinds exact,linear");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--kinds: attention kind 'linear': expected exact, favor-softmax or favor-relu"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("forward+backward"), std::string::npos) << r.out;  // refused before the table
}

// A CPU cell under a tiny memory limit ends (killed by the sweep past its limit, or at --cell-timeout) as a
// row of the table, never hanging the sweep.
TEST(BenchAttentionCli, CellPastItsTimeoutIsReportedNotWaitedFor) {
  const auto t0 = std::chrono::steady_clock::now();
  const CliRun r = run_performer("--threads 1 bench attention --lengths 256 --kinds exact --memory-limit 40MB "
                                 "--cell-timeout 5");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_LT(seconds, 60.0) << r.out;
  const bool reported = r.out.find("TIMEOUT") != std::string::npos || r.out.find("OOM") != std::string::npos ||
                        r.out.find("error") != std::string::npos || r.out.find(" MB") != std::string::npos;
  EXPECT_TRUE(reported) << r.out;
}
