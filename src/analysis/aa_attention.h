// Attention between amino-acid types (the protein-attention analysis of Vig et al., "BERTology meets
// biology"): over many proteins, how much attention flows from residues of type a to residues of type b,
// relative to what uniform attention would give the same pairs:
//     R_ab = sum_{i: x_i = a, j: x_j = b} A_ij  /  sum_{i: x_i = a, j: x_j = b} 1/n
// symmetrized as (num_ab + num_ba) / (den_ab + den_ba). R = 1 means "no preference"; a head that has
// learned biochemical similarity puts more attention between similar residues, so R correlates with
// BLOSUM62 over the off-diagonal pairs. Only the 20 standard amino acids count.
#pragma once
#include <vector>

#include <ATen/core/Tensor.h>

#include "data/alphabet.h"

namespace performer {

class AaAttention {
 public:
  explicit AaAttention(int64_t heads);
  // attention [H, n, n] (rows = attending residue), residues: the n token ids of the protein.
  void add(const at::Tensor& attention, const std::vector<Token>& residues);
  // 20 x 20 symmetrized ratio of one head, vocabulary order (L A G V ...); NaN where no pair occurred.
  std::vector<double> matrix(int64_t head) const;
  int64_t heads() const { return heads_; }

 private:
  int64_t heads_;
  std::vector<double> num_, den_;  // [H, 20, 20]
};

}  // namespace performer
