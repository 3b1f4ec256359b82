#include "analysis/aa_similarity.h"

#include <cmath>

#include "util/error.h"
#include "util/hash.h"

namespace performer {

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::kTrained: return "trained";
    case Variant::kInit: return "init";
    case Variant::kPositionalNull: return "positional_null";
    case Variant::kShuffled: return "shuffled";
  }
  return "?";
}

SimilarityStudy::SimilarityStudy(int64_t slots, int64_t heads, int64_t max_length, std::vector<double> blosum, uint64_t seed,
                                 double threshold)
    : slots_(slots), heads_(heads), blosum_(std::move(blosum)), seed_(seed), threshold_(threshold) {
  if (blosum_.size() != static_cast<size_t>(Alphabet::kStandardAminoAcids * Alphabet::kStandardAminoAcids))
    throw Error("similarity study: the substitution matrix must be 20 x 20");
  for (int v = 0; v < kVariants; ++v) {
    for (int64_t s = 0; s < slots; ++s) pairwise_.emplace_back(heads);
    targets_.emplace_back(slots * heads, threshold);
  }
  for (int64_t s = 0; s < slots; ++s) profiles_.emplace_back(heads, max_length);
}

void SimilarityStudy::add(const std::vector<at::Tensor>& trained, const std::vector<at::Tensor>& init,
                          const std::vector<Token>& residues) {
  if (finished_) throw Error("similarity study: add() after finish()");
  if (static_cast<int64_t>(trained.size()) != slots_ || static_cast<int64_t>(init.size()) != slots_)
    throw Error("similarity study: expected one map per layer slot");
  const std::vector<Token> shuffled =
      shuffled_residues(residues, derive_seed(seed_, 0x5aff, static_cast<uint64_t>(residues_.size())));
  for (int64_t s = 0; s < slots_; ++s) {
    const at::Tensor& A = trained[static_cast<size_t>(s)];
    const at::Tensor& A0 = init[static_cast<size_t>(s)];
    pairwise_[index(Variant::kTrained, s)].add(A, residues);
    pairwise_[index(Variant::kInit, s)].add(A0, residues);
    pairwise_[index(Variant::kShuffled, s)].add(A, shuffled);
    targets_[static_cast<size_t>(Variant::kTrained)].add(A, residues, s * heads_);
    targets_[static_cast<size_t>(Variant::kInit)].add(A0, residues, s * heads_);
    targets_[static_cast<size_t>(Variant::kShuffled)].add(A, shuffled, s * heads_);
    profiles_[static_cast<size_t>(s)].add(A);
  }
  residues_.push_back(residues);
}

void SimilarityStudy::finish() {
  if (finished_) return;
  for (const auto& res : residues_)
    for (int64_t s = 0; s < slots_; ++s) {
      at::Tensor A = profiles_[static_cast<size_t>(s)].attention(static_cast<int64_t>(res.size()));
      pairwise_[index(Variant::kPositionalNull, s)].add(A, res);
      targets_[static_cast<size_t>(Variant::kPositionalNull)].add(A, res, s * heads_);
    }
  finished_ = true;
}

PairCorrelation SimilarityStudy::head_correlation(Variant v, int64_t slot, int64_t head) const {
  return correlate_pairs(pairwise(v, slot).matrix(head), blosum_, Alphabet::kStandardAminoAcids);
}

PairCorrelation SimilarityStudy::target_correlation(Variant v) const {
  return correlate_pairs(targets(v).similarity(), blosum_, Alphabet::kStandardAminoAcids);
}

VariantSummary SimilarityStudy::summary(Variant v) const {
  if (!finished_) throw Error("similarity study: summary() before finish()");
  VariantSummary out;
  out.targets = target_correlation(v);
  if (out.targets.pairs < kMinTargetPairs) out.targets.pearson = out.targets.spearman = std::nan("");
  out.target_heads_used = targets(v).heads_used();
  double sum = 0;
  int64_t n = 0;
  out.pairwise_best = std::nan("");
  for (int64_t s = 0; s < slots_; ++s)
    for (int64_t h = 0; h < heads_; ++h) {
      const double r = head_correlation(v, s, h).pearson;
      if (std::isnan(r)) continue;
      sum += r;
      ++n;
      if (std::isnan(out.pairwise_best) || r > out.pairwise_best) {
        out.pairwise_best = r;
        out.best_slot = s;
        out.best_head = h;
      }
    }
  out.pairwise_mean = n > 0 ? sum / static_cast<double>(n) : std::nan("");
  return out;
}

}  // namespace performer
