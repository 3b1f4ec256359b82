// Held-out splits by sequence cluster (prepare --clusters): no cluster straddles two splits, the counts
// are reported, and malformed cluster files are one-line errors naming the file and the line.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "data/clusters.h"
#include "data/prepare.h"
#include "io/hdf5.h"
#include "test_util.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

const std::string kTsv = "trembl_600.clusters50.tsv";

PrepareOptions with_clusters(const std::string& input, const std::string& tsv, const std::string& out) {
  PrepareOptions o;
  o.inputs = {data_path(input)};
  o.out = out;
  o.valid_frac = 0.2;
  o.test_frac = 0.2;
  o.progress = false;
  o.clusters = tsv;
  return o;
}

std::vector<std::pair<std::string, std::string>> tsv_rows(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::pair<std::string, std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    const auto tab = line.find('\t');
    rows.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return rows;
}

std::string error_of(const PrepareOptions& o) {
  try {
    prepare_corpus(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Clusters, NoClusterStraddlesTwoSplits) {
  TempDir dir;
  PrepareResult r = prepare_corpus(with_clusters("trembl_600.fasta.gz", data_path(kTsv), dir.file("c.h5")));
  EXPECT_EQ(r.stats.clusters, 564);
  EXPECT_EQ(r.stats.unclustered, 0);
  EXPECT_EQ(r.stats.cluster_members_absent, 0);
  EXPECT_NE(r.stats.summary().find("clusters: 564"), std::string::npos) << r.stats.summary();
  const Corpus c = Corpus::load(dir.file("c.h5"));
  // By the TSV itself: every member of a cluster is in its representative's split.
  std::map<std::string, Split> split_of;
  for (size_t i = 0; i < c.size(); ++i) split_of[c.accession(i)] = c.split(i);
  int multi = 0;
  std::map<std::string, std::set<Split>> splits_of_cluster;
  for (const auto& [rep, member] : tsv_rows(data_path(kTsv))) splits_of_cluster[rep].insert(split_of.at(member));
  for (const auto& [rep, splits] : splits_of_cluster) EXPECT_EQ(splits.size(), 1u) << "cluster " << rep;
  for (const auto& [rep, member] : tsv_rows(data_path(kTsv))) multi += rep != member;
  EXPECT_GT(multi, 20) << "the test needs clusters with several members";
  // The /cluster dataset holds the same grouping, and all three splits are used.
  h5::Handle f = h5::open_file(dir.file("c.h5"));
  const auto ids = h5::read_array<int64_t>(f, "cluster");
  ASSERT_EQ(ids.size(), c.size());
  std::map<int64_t, std::set<Split>> by_id;
  for (size_t i = 0; i < ids.size(); ++i) by_id[ids[i]].insert(c.split(i));
  EXPECT_EQ(by_id.size(), 564u);
  for (const auto& [id, splits] : by_id) EXPECT_EQ(splits.size(), 1u) << "cluster id " << id;
  for (int s = 0; s < kNumSplits; ++s) EXPECT_GT(r.stats.sequences[static_cast<size_t>(s)], 50) << "split " << s;
  EXPECT_EQ(h5::read_attr_string(f, "split_key"), "cluster");
}

TEST(Clusters, UnlistedProteinsAreTheirOwnClusterAndAbsentMembersAreCounted) {
  TempDir dir;
  // Drop the rows of 10 members that are not representatives: those proteins are then unlisted.
  const auto rows = tsv_rows(data_path(kTsv));
  std::ofstream out(dir.file("partial.tsv"));
  int dropped = 0;
  for (const auto& [rep, member] : rows) {
    if (rep != member && dropped < 10) {
      ++dropped;
      continue;
    }
    out << rep << '\t' << member << '\n';
  }
  out.close();
  PrepareResult r = prepare_corpus(with_clusters("trembl_600.fasta.gz", dir.file("partial.tsv"), dir.file("c.h5")));
  EXPECT_EQ(r.stats.unclustered, 10);
  EXPECT_EQ(r.stats.clusters, 564 + 10);
  // The first 60 proteins against the 600-protein file: 540 listed members are absent from the input.
  PrepareResult e = prepare_corpus(with_clusters("real_excerpt.fasta", data_path(kTsv), dir.file("e.h5")));
  EXPECT_EQ(e.stats.cluster_members_absent, 540);
  EXPECT_EQ(e.stats.unclustered, 0);
}

TEST(Clusters, MalformedFilesAreOneLineErrorsNamingFileAndLine) {
  TempDir dir;
  auto attempt = [&](const std::string& name, const std::string& text) {
    write_file(dir.file(name), text);
    return error_of(with_clusters("real_excerpt.fasta", dir.file(name), dir.file("out.h5")));
  };
  std::string e = attempt("missing.tsv", "W0FSK4\tW0FSK4\nM4KW32\n");
  EXPECT_NE(e.find(dir.file("missing.tsv") + ":2: expected two tab-separated columns"), std::string::npos) << e;
  e = attempt("three.tsv", "W0FSK4\tW0FSK4\tX\n");
  EXPECT_NE(e.find("three.tsv:1:"), std::string::npos) << e;
  e = attempt("twice.tsv", "W0FSK4\tW0FSK4\nM4KW32\tM4KW32\nM4KW32\tW0FSK4\n");
  EXPECT_NE(e.find("twice.tsv:3: member 'W0FSK4' is listed twice (first at line 1"), std::string::npos) << e;
  e = attempt("norep.tsv", "W0FSK4\tW0FSK4\nZZZ999\tM4KW32\n");
  EXPECT_NE(e.find("norep.tsv:2: representative 'ZZZ999' is not listed as a member of its own cluster"),
            std::string::npos) << e;
  e = attempt("empty.tsv", "");
  EXPECT_NE(e.find("empty.tsv: no clusters"), std::string::npos) << e;
  e = error_of(with_clusters("real_excerpt.fasta", dir.file("none.tsv"), dir.file("out.h5")));
  EXPECT_NE(e.find("none.tsv: cannot open"), std::string::npos) << e;
  for (const std::string& msg : {e}) EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.h5"))) << "nothing written on an error";
}

TEST(Clusters, PrepareCliReportsTheClusters) {
  TempDir dir;
  CliRun r = run_performer("prepare -q --input " + data_path("trembl_600.fasta.gz") + " --out " + dir.file("c.h5") +
                           " --clusters " + data_path(kTsv));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("clusters: 564 (split by cluster)"), std::string::npos) << r.out;
}
