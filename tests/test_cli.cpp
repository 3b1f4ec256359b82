// Runs the `performer` binary as a user would and checks what reaches the terminal.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>

#include "test_util.h"

using namespace performer::testing;

namespace {

CliRun run(const std::string& args) { return run_performer(args); }

// One line "error: ...", non-zero exit, and the output corpus not created.
void expect_clean_failure(const std::string& input, const std::string& fragment) {
  TempDir dir;
  CliRun r = run("prepare -q --input " + input + " --out " + dir.file("c.h5"));
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(fragment), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "files left behind: " << r.out;
}

}  // namespace

TEST(Cli, PrepareBadInputsFailWithOneLine) {
  expect_clean_failure(data_path("bad_sequence_before_header.fasta"), "bad_sequence_before_header.fasta:");
  expect_clean_failure(data_path("bad_binary.fasta"), "binary data");
  expect_clean_failure(data_path("bad_truncated.fasta.gz"), "truncated");
  expect_clean_failure(data_path("empty.fasta"), "empty");
  expect_clean_failure(data_path("missing.fasta"), "missing.fasta");
  expect_clean_failure(data_path("bad_empty_record.fasta"), "has no sequence");
  expect_clean_failure(PERFORMER_TEST_DATA, "is a directory");
}

TEST(Cli, PrepareThenInfo) {
  TempDir dir;
  CliRun r = run("prepare -q --input " + data_path("real_excerpt.fasta.gz") + " " + data_path("messy.fasta") +
              " --out " + dir.file("c.h5") + " --valid-frac 0.1 --test-frac 0.1");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("sequences: 65"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unigram perplexity"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MB/s"), std::string::npos) << r.out;
  CliRun info = run("info " + dir.file("c.h5"));
  ASSERT_EQ(info.status, 0) << info.out;
  EXPECT_NE(info.out.find("sequences: 65"), std::string::npos) << info.out;
  CliRun bad = run("info " + data_path("real_excerpt.fasta"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("not a readable HDF5 file"), std::string::npos) << bad.out;
}

TEST(Cli, UsageErrors) {
  CliRun r = run("prepare --out x.h5");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--input"), std::string::npos) << r.out;
  CliRun u = run("prepare -q --input " + data_path("real_excerpt.fasta") + " --out /tmp/x.h5 --unknown maybe");
  EXPECT_NE(u.status, 0);
  EXPECT_NE(u.out.find("unknown-residue policy 'maybe'"), std::string::npos) << u.out;
}
