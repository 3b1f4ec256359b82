#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "data/corpus.h"
#include "data/prepare.h"
#include "io/hdf5.h"
#include "test_util.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

PrepareOptions options_for(const std::vector<std::string>& inputs, const std::string& out) {
  PrepareOptions o;
  o.inputs = inputs;
  o.out = out;
  o.valid_frac = 0.2;
  o.test_frac = 0.1;
  o.progress = false;
  return o;
}

// accession -> (split, residues) of a corpus file.
std::map<std::string, std::pair<Split, std::string>> contents(const std::string& path) {
  Corpus c = Corpus::load(path);
  std::map<std::string, std::pair<Split, std::string>> m;
  for (size_t i = 0; i < c.size(); ++i)
    m[c.accession(i)] = {c.split(i), Alphabet::decode(c.residues(i).data(), static_cast<size_t>(c.length(i)), true)};
  return m;
}

}  // namespace

TEST(Prepare, CorpusHoldsEveryRecordWithItsTokens) {
  TempDir dir;
  auto o = options_for({data_path("real_excerpt.fasta")}, dir.file("c.h5"));
  PrepareResult r = prepare_corpus(o);
  auto recs = read_all(data_path("real_excerpt.fasta"));
  EXPECT_EQ(r.stats.total_sequences(), static_cast<int64_t>(recs.size()));
  auto m = contents(o.out);
  ASSERT_EQ(m.size(), recs.size());
  int64_t residues = 0;
  for (auto& rec : recs) {
    ASSERT_TRUE(m.count(rec.accession)) << rec.accession;
    EXPECT_EQ(m[rec.accession].second, rec.residues);
    EXPECT_EQ(m[rec.accession].first, assign_split(rec.accession, 0.2, 0.1, 0));
    residues += static_cast<int64_t>(rec.residues.size());
  }
  EXPECT_EQ(r.stats.total_residues(), residues);
  // Stored statistics equal the returned ones, and the file carries its self-description.
  Corpus c = Corpus::load(o.out);
  EXPECT_EQ(c.stats().sequences, r.stats.sequences);
  EXPECT_EQ(c.stats().residue_counts, r.stats.residue_counts);
  h5::Handle f = h5::open_file(o.out);
  EXPECT_EQ(h5::read_attr_strings(f, "vocabulary"), Alphabet::names());
  EXPECT_EQ(h5::read_attr_string(f, "split_key"), "accession");
  EXPECT_FALSE(std::filesystem::exists(o.out + ".tmp-" + std::to_string(::getpid())));
}

TEST(Prepare, UnigramPerplexityMatchesDirectComputation) {
  TempDir dir;
  auto o = options_for({data_path("real_excerpt.fasta")}, dir.file("c.h5"));
  PrepareResult r = prepare_corpus(o);
  Corpus c = Corpus::load(o.out);
  // Naive: add-one smoothed train frequencies over the 27 residue letters, then mean NLL on valid.
  std::map<int, double> counts;
  double total = 0;
  for (int t = 0; t < Alphabet::kSize; ++t)
    if (Alphabet::is_residue(static_cast<Token>(t))) counts[t] = 1, total += 1;
  for (size_t i = 0; i < c.size(); ++i)
    if (c.split(i) == Split::kTrain)
      for (Token t : c.residues(i)) counts[t] += 1, total += 1;
  double nll = 0, n = 0;
  for (size_t i = 0; i < c.size(); ++i)
    if (c.split(i) == Split::kValid)
      for (Token t : c.residues(i)) nll -= std::log(counts[t] / total), n += 1;
  ASSERT_GT(n, 0);
  EXPECT_NEAR(r.stats.unigram_perplexity_valid, std::exp(nll / n), 1e-9);
  // Real proteins: far below uniform over 20 (the paper reports 17.80 on TrEMBL) but above ~15.
  EXPECT_LT(r.stats.unigram_perplexity_valid, 20.0);
  EXPECT_GT(r.stats.unigram_perplexity_valid, 14.0);
}

TEST(Prepare, SplitIsStableUnderShuffledInputOrder) {
  TempDir dir;
  auto recs = read_all(data_path("real_excerpt.fasta"));
  std::string forward, backward;
  for (auto& r : recs) forward += ">" + r.accession + "\n" + r.residues + "\n";
  for (auto it = recs.rbegin(); it != recs.rend(); ++it) backward += ">" + it->accession + "\n" + it->residues + "\n";
  write_file(dir.file("f.fa"), forward);
  write_file(dir.file("b.fa"), backward);
  prepare_corpus(options_for({dir.file("f.fa")}, dir.file("f.h5")));
  prepare_corpus(options_for({dir.file("b.fa")}, dir.file("b.h5")));
  auto a = contents(dir.file("f.h5")), b = contents(dir.file("b.h5"));
  EXPECT_EQ(a, b);
  int counts[3] = {0, 0, 0};
  for (auto& [acc, v] : a) counts[static_cast<int>(v.first)]++;
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);  // 60 proteins, 20% valid: all three splits populated
  EXPECT_GT(counts[2], 0);
}

TEST(Prepare, DedupDropsExactDuplicatesWithinAndAcrossFiles) {
  TempDir dir;
  write_file(dir.file("a.fa"), ">A1\nMKTAYIAK\n>A2\nMKTAYIAK\n>A3\nGGGLLL\n");
  write_file(dir.file("b.fa"), ">B1\nGGGLLL\n>B2\nWWWCCC\n");
  auto o = options_for({dir.file("a.fa"), dir.file("b.fa")}, dir.file("d.h5"));
  o.dedup = true;
  PrepareResult r = prepare_corpus(o);
  EXPECT_EQ(r.stats.total_sequences(), 3);
  EXPECT_EQ(r.stats.dropped_duplicate, 2);
  auto m = contents(o.out);
  EXPECT_TRUE(m.count("A1") && m.count("A3") && m.count("B2"));
  // Keyed by sequence: identical sequences can never straddle train and valid.
  EXPECT_EQ(m["A1"].first, assign_split("MKTAYIAK", 0.2, 0.1, 0));
  // Without dedup every record is kept.
  o.dedup = false;
  o.out = dir.file("nd.h5");
  EXPECT_EQ(prepare_corpus(o).stats.total_sequences(), 5);
}

TEST(Prepare, LengthFiltersAreCounted) {
  TempDir dir;
  write_file(dir.file("a.fa"), ">s\nMK\n>m\nMKTAY\n>l\nMKTAYIAKQR\n");
  auto o = options_for({dir.file("a.fa")}, dir.file("c.h5"));
  o.min_len = 3;
  o.max_len = 8;
  PrepareResult r = prepare_corpus(o);
  EXPECT_EQ(r.stats.total_sequences(), 1);
  EXPECT_EQ(r.stats.dropped_short, 1);
  EXPECT_EQ(r.stats.dropped_long, 1);
  EXPECT_EQ(r.stats.min_length, 5);
}

TEST(Prepare, FailureLeavesNoFileBehind) {
  TempDir dir;
  // The second input is bad: the first is fully read, then the error must remove the temporary corpus.
  auto o = options_for({data_path("real_excerpt.fasta"), data_path("bad_binary.fasta")}, dir.file("c.h5"));
  EXPECT_THROW(prepare_corpus(o), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "half-written corpus left in " << dir.path();
  // An existing corpus is not replaced by a failed run.
  auto good = options_for({data_path("real_excerpt.fasta")}, dir.file("c.h5"));
  prepare_corpus(good);
  auto before = std::filesystem::file_size(good.out);
  EXPECT_THROW(prepare_corpus(o), Error);
  EXPECT_EQ(std::filesystem::file_size(good.out), before);
  EXPECT_NO_THROW(Corpus::load(good.out));
}

TEST(Prepare, RejectsBadOptionsAndCorruptCorpus) {
  TempDir dir;
  auto o = options_for({data_path("real_excerpt.fasta")}, dir.file("missing_dir/c.h5"));
  EXPECT_THROW(prepare_corpus(o), Error);
  o.out = dir.file("c.h5");
  o.valid_frac = 0.7;
  o.test_frac = 0.4;
  EXPECT_THROW(prepare_corpus(o), Error);
  write_file(dir.file("junk.h5"), "this is not HDF5");
  EXPECT_THROW(Corpus::load(dir.file("junk.h5")), Error);
  EXPECT_THROW(Corpus::load(dir.file("nope.h5")), Error);
  // A truncated corpus.
  o.valid_frac = 0.2;
  o.test_frac = 0.1;
  prepare_corpus(o);
  auto size = std::filesystem::file_size(o.out);
  std::filesystem::resize_file(o.out, size / 2);
  EXPECT_THROW(Corpus::load(o.out), Error);
}
