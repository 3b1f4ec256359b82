#include "analysis/substitution.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>

#include "data/alphabet.h"
#include "util/error.h"

namespace performer {

double SubstitutionMatrix::at(char a, char b) const {
  const size_t i = letters.find(a), j = letters.find(b);
  if (i == std::string::npos || j == std::string::npos)
    throw Error(std::string("substitution matrix has no entry for '") + a + "' / '" + b + "'");
  return scores[i * letters.size() + j];
}

std::vector<double> SubstitutionMatrix::standard_block() const {
  const std::string_view aa = Alphabet::kResidues.substr(0, Alphabet::kStandardAminoAcids);
  std::vector<double> out;
  for (char a : aa)
    for (char b : aa) out.push_back(at(a, b));
  return out;
}

SubstitutionMatrix parse_substitution_matrix(const std::string& text, const std::string& origin) {
  SubstitutionMatrix m;
  std::istringstream in(text);
  std::string line;
  long long line_no = 0;
  size_t rows = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[0] == '#') continue;
    std::istringstream fields(line);
    if (m.letters.empty()) {  // header: column letters
      std::string tok;
      while (fields >> tok) {
        if (tok.size() != 1) throw Error(where(origin, line_no) + ": header entry '" + tok + "' is not a single letter");
        m.letters += tok;
      }
      m.scores.assign(m.letters.size() * m.letters.size(), 0.0);
      continue;
    }
    std::string row_letter;
    fields >> row_letter;
    if (row_letter.size() != 1 || row_letter[0] != m.letters[std::min(rows, m.letters.size() - 1)] || rows >= m.letters.size())
      throw Error(where(origin, line_no) + ": row '" + row_letter + "' does not match the header order " + m.letters);
    for (size_t j = 0; j < m.letters.size(); ++j) {
      std::string tok;
      if (!(fields >> tok)) throw Error(where(origin, line_no) + ": row " + row_letter + " has fewer than " +
                                        std::to_string(m.letters.size()) + " scores");
      char* end = nullptr;
      const double v = std::strtod(tok.c_str(), &end);
      if (end == tok.c_str() || *end != '\0') throw Error(where(origin, line_no) + ": '" + tok + "' is not a number");
      m.scores[rows * m.letters.size() + j] = v;
    }
    std::string extra;
    if (fields >> extra) throw Error(where(origin, line_no) + ": row " + row_letter + " has more scores than the header");
    ++rows;
  }
  if (m.letters.empty()) throw Error(origin + ": no matrix (no header line)");
  if (rows != m.letters.size())
    throw Error(origin + ": " + std::to_string(rows) + " rows for " + std::to_string(m.letters.size()) + " columns");
  return m;
}

SubstitutionMatrix read_substitution_matrix(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open substitution matrix");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_substitution_matrix(ss.str(), path);
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2) throw Error("pearson: samples must have the same length >= 2");
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return (sxx == 0 || syy == 0) ? std::nan("") : sxy / std::sqrt(sxx * syy);
}

namespace {
std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double avg = 0.5 * static_cast<double>(i + j) + 1.0;  // 1-based average rank of the tie group
    for (size_t k = i; k <= j; ++k) r[order[k]] = avg;
    i = j + 1;
  }
  return r;
}
}  // namespace

double spearman(const std::vector<double>& x, const std::vector<double>& y) { return pearson(ranks(x), ranks(y)); }

PairCorrelation correlate_pairs(const std::vector<double>& a, const std::vector<double>& b, size_t n) {
  if (a.size() != n * n || b.size() != n * n) throw Error("correlate_pairs: matrices are not n x n");
  std::vector<double> x, y;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j)
      if (std::isfinite(a[i * n + j]) && std::isfinite(b[i * n + j])) {
        x.push_back(a[i * n + j]);
        y.push_back(b[i * n + j]);
      }
  PairCorrelation r;
  r.pairs = static_cast<int64_t>(x.size());
  if (x.size() < 3) return r;
  r.pearson = pearson(x, y);
  r.spearman = spearman(x, y);
  return r;
}

}  // namespace performer
