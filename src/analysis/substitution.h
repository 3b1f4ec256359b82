// Amino-acid substitution matrices (BLOSUM62) and the statistics used to compare them with what attention
// heads learn.
//
// NCBI's matrix text format: '#' comment lines, a header line of column letters, then one row per letter:
// the row letter followed by one integer (or number) per column.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace performer {

struct SubstitutionMatrix {
  std::string letters;        // column/row order of the file, e.g. "ARNDCQEGHILKMFPSTWYVBJZX*"
  std::vector<double> scores; // letters.size()^2, row-major
  double at(char a, char b) const;  // throws Error for a letter not in the matrix
  // The 20 x 20 block of the standard amino acids in the vocabulary's order (LAGVSERTIDPKQNFYMHWC).
  std::vector<double> standard_block() const;
};

// Parses a matrix file; malformed input is an Error naming the file and line.
SubstitutionMatrix read_substitution_matrix(const std::string& path);
SubstitutionMatrix parse_substitution_matrix(const std::string& text, const std::string& origin);

// Pearson correlation of two equally long samples; NaN when either is constant.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// Spearman rank correlation (ties get their average rank).
double spearman(const std::vector<double>& x, const std::vector<double>& y);
// Correlation of two symmetric n x n row-major matrices over their distinct pairs i < j (190 for the 20
// amino acids) where both entries are finite; NaN when fewer than 3 such pairs remain.
struct PairCorrelation {
  double pearson = std::numeric_limits<double>::quiet_NaN();
  double spearman = std::numeric_limits<double>::quiet_NaN();
  int64_t pairs = 0;  // pairs used
};
PairCorrelation correlate_pairs(const std::vector<double>& a, const std::vector<double>& b, size_t n);

}  // namespace performer
