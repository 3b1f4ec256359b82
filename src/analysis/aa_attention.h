// Attention and amino-acid similarity: two measures of whether attention heads treat biochemically
// similar amino acids alike, each compared with BLOSUM62 (analysis/substitution.h), and two null models
// that say how much of a measure position and composition alone explain.
//
// Pairwise ratio (PairwiseAttention): over many proteins, how much attention flows between residues of
// type a and residues of type b, relative to what uniform attention would give the same pairs:
//     R_ab = sum_{i: x_i = a, j: x_j = b} A_ij  /  sum_{i: x_i = a, j: x_j = b} 1/n
// symmetrized as (num_ab + num_ba) / (den_ab + den_ba), one 20 x 20 matrix per head. Confounded: a head
// that attends locally scores high wherever local composition (hydrophobic cores, transmembrane segments,
// low-complexity regions) groups similar amino acids, without knowing anything about them.
//
// Target shares (TargetShares; Vig et al., "BERTology Meets Biology", ICLR 2021): per head h and amino acid
// b, the share of the head's high-confidence attention (A_ij > 0.3) whose target x_j is b,
//     p_h(b) = #{(i, j): A_ij > 0.3, x_j = b} / #{(i, j): A_ij > 0.3, x_j standard},
// then for each pair of amino acids the Pearson correlation across heads of p_.(a) and p_.(b): a 20 x 20
// similarity, one for the whole model, compared with BLOSUM62 over the 190 pairs (published: TAPE BERT
// 0.73, ProtBert 0.68, a random model near 0).
//
// Nulls: (1) positional (DistanceProfile): each head's attention replaced by its mean attention as a
// function of |i - j|, which keeps where a head looks and drops what it looks at; (2) shuffled identities
// (shuffled_residues): the residue types permuted within each protein, attention unchanged. A measure that
// beats both nulls reflects what the heads learned about the amino acids themselves.
// Only the 20 standard amino acids count.
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/alphabet.h"

namespace performer {

class PairwiseAttention {
 public:
  explicit PairwiseAttention(int64_t heads);
  // attention [H, n, n] (rows = attending residue), residues: the n token ids of the protein.
  void add(const at::Tensor& attention, const std::vector<Token>& residues);
  // 20 x 20 symmetrized ratio of one head, vocabulary order (L A G V ...); NaN where no pair occurred.
  std::vector<double> matrix(int64_t head) const;
  int64_t heads() const { return heads_; }

 private:
  int64_t heads_;
  std::vector<double> num_, den_;  // [H, 20, 20]
};

class TargetShares {
 public:
  static constexpr double kThreshold = 0.3;  // Vig et al.'s high-confidence attention
  explicit TargetShares(int64_t heads, double threshold = kThreshold);
  // attention [h, n, n] of heads first_head .. first_head + h - 1; residues: the n token ids.
  void add(const at::Tensor& attention, const std::vector<Token>& residues, int64_t first_head = 0);
  // p_h(b) [heads, 20] (NaN rows for heads without high-confidence attention).
  std::vector<double> shares() const;
  // 20 x 20 Pearson correlations across the heads that have high-confidence attention; NaN where an amino
  // acid's shares do not vary (or fewer than 3 heads qualify).
  std::vector<double> similarity() const;
  int64_t heads() const { return heads_; }
  int64_t heads_used() const;  // heads with any high-confidence attention

 private:
  int64_t heads_;
  double threshold_;
  std::vector<double> counts_;  // [H, 20]
};

// Mean attention of each head as a function of the distance |i - j| (over all rows added), and attention
// maps made from it: the positional null.
class DistanceProfile {
 public:
  DistanceProfile(int64_t heads, int64_t max_length);
  void add(const at::Tensor& attention);  // [H, n, n], n <= max_length
  // [H, n, n]: A_ij = profile_h(|i - j|), rows renormalized to sum to 1.
  at::Tensor attention(int64_t n) const;
  // profile_h(d) for d < max_length [H, max_length] (0 where no pair at that distance was seen).
  at::Tensor profile() const;

 private:
  int64_t heads_, max_length_;
  at::Tensor sum_, count_;  // [H, max_length] float64, [max_length]
};

// The residues in an order shuffled by `seed` (Fisher-Yates with the project's RNG).
std::vector<Token> shuffled_residues(const std::vector<Token>& residues, uint64_t seed);

}  // namespace performer
