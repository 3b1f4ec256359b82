// Embeddings of proteins by a trained encoder (`performer embed`): per-residue hidden states of chosen
// layers, and per-protein vectors pooled from them.
//
// A protein of n residues is fed as "<cls> residues <eos>" when n <= max_len - 2 (W). A longer one is fed
// in overlapping windows of W residues, each wrapped as "<cls> window <eos>", starting every W/2 residues
// (the last window ends at the protein's end). Each residue's vector is taken from exactly one window: the
// one in which it lies farthest from a cut edge (the boundary between two consecutive windows is the
// middle of their overlap), so every residue keeps at least W/4 residues of context on each side unless it
// is near the protein's own ends. Nothing is cut and nothing is averaged.
//
// Pooling: mean = the mean of the protein's residue vectors (every residue once; <cls>, <eos> and padding
// excluded); cls = the <cls> vector of the protein's first window (for a protein longer than W it has seen
// only that window).
//
// A protein gives the same vectors alone or in a padded batch (padding is masked out of attention), up to
// float rounding. FAVOR models use the checkpoint's random features, so embeddings are reproducible.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "model/encoder.h"

namespace performer {

// Residues [start, start + length) of a protein fed as one window; its vectors of residues
// [keep_begin, keep_end) are the protein's (absolute residue positions).
struct ResidueWindow {
  int64_t start = 0, length = 0;
  int64_t keep_begin = 0, keep_end = 0;
};
// The windows of a protein of `residues` residues for windows of at most `max_residues` (>= 2).
std::vector<ResidueWindow> embedding_windows(int64_t residues, int64_t max_residues);
// Tokens the model reads for a protein: every window's residues plus its <cls> and <eos> (no padding).
// For a protein longer than the window this is about twice its residues (windows overlap by half).
int64_t embedding_tokens(int64_t residues, int64_t max_residues);

enum class Pooling { kMean, kCls, kBoth };
const std::vector<std::string>& pooling_names();  // "mean", "cls", "both"
Pooling parse_pooling(const std::string& s);

// Layer indices as given on the command line (negative: from the end, -1 = the last) -> 0..layers, where
// 0 = the embeddings and `layers` = the last block's output after the final LayerNorm. Throws a one-line
// Error for a layer the model lacks or a duplicate.
std::vector<int64_t> resolve_layers(const std::vector<int64_t>& asked, int64_t model_layers);

struct EmbedOptions {
  std::vector<int64_t> layers;       // resolved (0..model layers)
  Pooling pool = Pooling::kMean;
  bool per_residue = false;
  int64_t tokens_per_batch = 16384;  // budget of rows x padded length per forward pass
  const std::atomic<bool>* stop = nullptr;  // when it becomes true, embed_proteins returns {} after its batch
};

struct ProteinEmbedding {
  // One entry per layer of EmbedOptions::layers: [D] pooled vectors (undefined when not asked for) and,
  // with per_residue, [n, D] residue vectors. float32 on the CPU.
  std::vector<at::Tensor> mean, cls, residues;
};

// Embeds proteins (residue letters) with the model in eval mode: their windows are sorted by length and
// batched under the token budget; out[i] belongs to proteins[i]. Empty when options.stop was set.
std::vector<ProteinEmbedding> embed_proteins(Encoder& model, const std::vector<std::string>& proteins,
                                             const EmbedOptions& options, const torch::Device& device);

}  // namespace performer
