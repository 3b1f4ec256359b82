// `performer attention` as one call:
//
// 1. Attention maps: for the first --export proteins, the attention probabilities of every chosen layer
//    and head as the model applies them (softmax for exact models, the implicit D^-1 phi(Q) phi(K)^T with
//    the model's own features for FAVOR), restricted to residues (<cls>/<eos> rows and columns removed,
//    rows renormalized), to attention.h5 (/proteins/<accession>/layer_<l> [heads, n, n], float32, the
//    --heads chosen, listed in the group's "heads" attribute) and one PNG
//    heatmap per layer and head (png/<accession>_layer<l>_head<h>.png).
// 2. Amino-acid similarity vs BLOSUM62 over the first --max-sequences proteins (analysis/aa_similarity.h):
//    two measures (Vig et al.'s target shares over all heads; the pairwise ratio per head), each for the
//    trained model, the model at initialization, a positional null and shuffled residue identities.
//    Outputs: similarity.csv (one row per measure and statistic, the four variants side by side, and
//    whether the trained figure is above both nulls), correlations.csv (every head and variant),
//    aa_attention.csv (the best trained head's pairwise matrix), target_similarity.csv (the trained
//    target-share similarity), attention.h5 (/pairwise/<variant>/layer_<l> [H, 20, 20],
//    /target_shares/<variant>/shares [layers x H, 20] and /similarity [20, 20] with their correlations as
//    attributes) and blosum_vs_attention.png (target-share similarity, best pairwise head, BLOSUM62).
// Proteins longer than the model's max_len - 2 residues are represented by their first max_len - 2.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/aa_similarity.h"
#include "data/sequence_reader.h"

namespace performer {

struct AttentionStudy {
  std::string checkpoint, out;
  std::vector<std::string> inputs;
  std::string layers = "all", heads = "all";  // 'all' or indices (from 0, or from the end: -1 = the last)
  std::string blosum = "data/BLOSUM62";       // substitution matrix in NCBI text format
  std::string device = "auto";
  std::string precision = "fp32";  // fp32 | bf16 | auto (util/precision.h)
  int64_t max_sequences = 500;  // proteins aggregated for the comparison
  int64_t exported = 3;         // proteins whose maps are written
  int64_t max_residues = 0;     // residues of each protein used; 0: the model's max_len - 2
  uint64_t seed = 0;            // residue shuffles of the null
  double threshold = TargetShares::kThreshold;
  ReaderOptions reader;
};

// Runs the study; returns 0. Errors (bad input, maps too large for the device, an output over an input)
// are Error, raised before anything is written.
int run_attention_study(const AttentionStudy& study);

}  // namespace performer
