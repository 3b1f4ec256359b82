// Residue contacts from attention maps: the features a contact regression reads, the true contacts of a
// structure, and the pairs that are scored.
//
// Features (Rao et al. 2020, "Transformer protein language models are unsupervised structure learners";
// ESM's contact head computes the same): every layer x head map A [n, n] of one protein, the special tokens'
// rows and columns dropped (rows not renormalized), symmetrized and APC-corrected:
//     S = A + A^T,   F_ij = S_ij - (sum_k S_ik)(sum_k S_kj) / (sum_kl S_kl)
// The average product correction removes the part of S explained by how much each residue attends and is
// attended overall (Dunn et al. 2008), leaving the pair-specific signal. Channels are layer-major
// (c = layer * heads + head), the order of ESM-2's contact_regression weight.
//
// Contacts: two residues whose C-beta atoms (C-alpha for glycine) are closer than 8 A. Only pairs i < j
// at least kMinSeparation apart in sequence whose residues both have coordinates are scored; ranges by
// separation j - i: short 6-11, medium 12-23, long >= 24.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace performer {

constexpr int64_t kMinSeparation = 6;

enum class ContactRange { kShort = 0, kMedium = 1, kLong = 2 };
constexpr int kContactRanges = 3;
constexpr std::array<ContactRange, kContactRanges> kAllContactRanges{ContactRange::kShort, ContactRange::kMedium,
                                                                     ContactRange::kLong};
// "short", "medium", "long".
const char* contact_range_name(ContactRange r);
// Whether a separation j - i (>= 0) falls in the range.
bool in_contact_range(ContactRange r, int64_t separation);

// [C, n, n] -> [C, n, n]: A + A^T.
at::Tensor symmetrize(const at::Tensor& maps);
// [C, n, n] -> [C, n, n]: x - rowsum * colsum / total, per channel.
at::Tensor apc(const at::Tensor& maps);
// apc(symmetrize(maps)) in float32 (the contact features of one protein).
at::Tensor contact_features(const at::Tensor& maps);

// The structure of one protein of n sequence positions.
struct ContactTruth {
  int64_t n = 0;
  std::vector<uint8_t> known;    // [n]: the position has a C-beta (or C-alpha) point
  std::vector<uint8_t> contact;  // [n * n], symmetric: distance < 8 A (0 where unknown)
};
// From per-position points (nullptr-free: `known[i]` says whether points[i] is set) and a cutoff in A.
ContactTruth contacts_from_points(const std::vector<std::array<double, 3>>& points, const std::vector<uint8_t>& known,
                                  double cutoff);

// The scored pairs of a protein: i < j, j - i >= kMinSeparation, both positions known; row-major order.
struct ScoredPairs {
  std::vector<int32_t> i, j;
  size_t size() const { return i.size(); }
};
ScoredPairs scored_pairs(const ContactTruth& truth);

// The features of the scored pairs as a row-major [pairs, C] float64 matrix (features [C, n, n]).
std::vector<double> pair_features(const at::Tensor& features, const ScoredPairs& pairs);

}  // namespace performer
