#include <gtest/gtest.h>

#include <cmath>

#include "analysis/substitution.h"
#include "test_util.h"
#include "util/error.h"

using namespace performer;

namespace {
std::string blosum_path() {
  return std::filesystem::path(PERFORMER_TEST_DATA).parent_path().parent_path().string() + "/data/BLOSUM62";
}
}  // namespace

TEST(Substitution, Blosum62KnownEntriesAndSymmetry) {
  SubstitutionMatrix m = read_substitution_matrix(blosum_path());
  EXPECT_EQ(m.letters, "ARNDCQEGHILKMFPSTWYVBJZX*");
  EXPECT_EQ(m.at('A', 'A'), 4);
  EXPECT_EQ(m.at('W', 'W'), 11);
  EXPECT_EQ(m.at('C', 'C'), 9);
  EXPECT_EQ(m.at('A', 'R'), -1);
  EXPECT_EQ(m.at('I', 'V'), 3);
  EXPECT_EQ(m.at('W', 'F'), 1);
  EXPECT_EQ(m.at('*', 'A'), -4);
  for (char a : m.letters)
    for (char b : m.letters) EXPECT_EQ(m.at(a, b), m.at(b, a)) << a << b;
  // The standard block follows the vocabulary order L A G V ...: (L, L) = 4, (L, A) = -1, (W, W) = 11.
  auto block = m.standard_block();
  ASSERT_EQ(block.size(), 400u);
  EXPECT_EQ(block[0], 4);
  EXPECT_EQ(block[1], -1);
  EXPECT_EQ(block[18 * 20 + 18], 11);
  EXPECT_THROW(m.at('A', 'j'), Error);
}

TEST(Substitution, MalformedMatricesNameTheLine) {
  EXPECT_THROW(parse_substitution_matrix("# only a comment\n", "m.txt"), Error);
  try {
    parse_substitution_matrix("   A  R\nA  4 -1\nR -1  x\n", "m.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.txt:3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_substitution_matrix("   A  R\nA  4\nR -1 5\n", "m.txt"), Error);   // short row
  EXPECT_THROW(parse_substitution_matrix("   A  R\nR  4 1\nA -1 5\n", "m.txt"), Error);  // wrong order
  EXPECT_THROW(parse_substitution_matrix("   A  R\nA  4 1\n", "m.txt"), Error);          // missing row
}

TEST(Substitution, CorrelationsMatchHandComputedValues) {
  // x = 1..5, y = 2, 4, 5, 4, 5: mean 4; Sxy = 6, Sxx = 10, Syy = 6 -> r = 6 / sqrt(60) = 0.7745967.
  std::vector<double> x = {1, 2, 3, 4, 5}, y = {2, 4, 5, 4, 5};
  EXPECT_NEAR(pearson(x, y), 6.0 / std::sqrt(60.0), 1e-12);
  // Ranks of y with ties: 1, 2.5, 4.5, 2.5, 4.5 -> Spearman = Pearson of ranks = 0.7378648.
  std::vector<double> ry = {1, 2.5, 4.5, 2.5, 4.5};
  EXPECT_NEAR(spearman(x, y), pearson(x, ry), 1e-12);
  EXPECT_NEAR(spearman(x, y), 0.7378647873726218, 1e-12);
  EXPECT_NEAR(spearman(x, {10, 20, 30, 40, 50}), 1.0, 1e-12);
  EXPECT_NEAR(pearson(x, {5, 4, 3, 2, 1}), -1.0, 1e-12);
  EXPECT_TRUE(std::isnan(pearson(x, {1, 1, 1, 1, 1})));
}

TEST(Substitution, PairCorrelationUsesDistinctFinitePairs) {
  // 3 x 3 symmetric matrices: pairs (0,1), (0,2), (1,2) = 1, 2, 3 and 2, 4, 7; diagonals ignored.
  const std::vector<double> a = {9, 1, 2, 1, -9, 3, 2, 3, 0}, b = {0, 2, 4, 2, 5, 7, 4, 7, 1};
  PairCorrelation r = correlate_pairs(a, b, 3);
  EXPECT_EQ(r.pairs, 3);
  EXPECT_NEAR(r.pearson, pearson({1, 2, 3}, {2, 4, 7}), 1e-12);
  EXPECT_NEAR(r.spearman, 1.0, 1e-12);
  // A NaN pair is left out; fewer than 3 pairs give NaN.
  std::vector<double> c = a;
  c[1] = c[3] = std::nan("");
  r = correlate_pairs(c, b, 3);
  EXPECT_EQ(r.pairs, 2);
  EXPECT_TRUE(std::isnan(r.pearson));
  EXPECT_THROW(correlate_pairs(a, {1, 2}, 3), std::exception);
}
