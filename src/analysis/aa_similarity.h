// The attention-vs-BLOSUM62 study of `performer attention`: both measures of analysis/aa_attention.h
// (pairwise ratio per head; Vig et al.'s target shares over all heads) for four variants of the input:
//   trained          the trained model's attention
//   init             the same architecture at initialization (same seed)
//   positional_null  each trained head replaced by its mean attention as a function of |i - j|
//   shuffled         the trained attention with residue types permuted within each protein
// Each variant's measure is correlated with BLOSUM62 over the 190 amino-acid pairs. The trained figure
// supports "the model learned substitution similarity" only where it is above both nulls.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "analysis/aa_attention.h"
#include "analysis/substitution.h"

namespace performer {

enum class Variant { kTrained, kInit, kPositionalNull, kShuffled };
constexpr int kVariants = 4;
const char* variant_name(Variant v);  // trained | init | positional_null | shuffled
inline Variant variant_at(int i) { return static_cast<Variant>(i); }

// Vig et al.'s figure is only reported (and compared) when at least this many of the 190 pairs are
// defined, i.e. when most amino acids receive high-confidence attention in some heads and not in others.
constexpr int64_t kMinTargetPairs = 100;

struct VariantSummary {
  PairCorrelation targets;           // Vig et al.: target-share similarity vs BLOSUM62 (NaN below kMinTargetPairs)
  int64_t target_heads_used = 0;     // heads with high-confidence attention (of layers x heads)
  double pairwise_mean = 0;          // pairwise ratio: mean Pearson over heads (NaN heads skipped)
  double pairwise_best = 0;          // pairwise ratio: the best head's Pearson
  int64_t best_slot = 0, best_head = 0;
};

class SimilarityStudy {
 public:
  // layer slots (the analysed layers), heads per layer, longest protein (residues), BLOSUM62 as the
  // 20 x 20 block in vocabulary order, and the seed of the shuffles.
  // threshold: the target-share measure's high-confidence attention.
  SimilarityStudy(int64_t layer_slots, int64_t heads, int64_t max_length, std::vector<double> blosum, uint64_t seed,
                  double threshold = TargetShares::kThreshold);

  // Attention [H, n, n] per layer slot of the trained model and of the model at initialization, restricted
  // to the protein's n residues.
  void add(const std::vector<at::Tensor>& trained, const std::vector<at::Tensor>& init, const std::vector<Token>& residues);
  // Runs the positional null over the stored proteins; call once after the last add().
  void finish();

  const PairwiseAttention& pairwise(Variant v, int64_t slot) const { return pairwise_[index(v, slot)]; }
  const TargetShares& targets(Variant v) const { return targets_[static_cast<size_t>(v)]; }
  PairCorrelation head_correlation(Variant v, int64_t slot, int64_t head) const;
  PairCorrelation target_correlation(Variant v) const;
  VariantSummary summary(Variant v) const;
  int64_t proteins() const { return static_cast<int64_t>(residues_.size()); }
  const std::vector<double>& blosum() const { return blosum_; }
  double threshold() const { return threshold_; }

 private:
  size_t index(Variant v, int64_t slot) const { return static_cast<size_t>(static_cast<int64_t>(v) * slots_ + slot); }
  int64_t slots_, heads_;
  std::vector<double> blosum_;
  uint64_t seed_;
  double threshold_;
  std::vector<PairwiseAttention> pairwise_;  // [variant * slots + slot]
  std::vector<TargetShares> targets_;        // [variant], heads slot * H + h
  std::vector<DistanceProfile> profiles_;    // [slot], of the trained heads
  std::vector<std::vector<Token>> residues_;
  bool finished_ = false;
};

}  // namespace performer
