#include "analysis/embeddings.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "data/alphabet.h"
#include "util/error.h"
#include "util/text.h"
#include "util/names.h"

namespace performer {

std::vector<ResidueWindow> embedding_windows(int64_t n, int64_t w) {
  if (w < 2) throw Error("embed: windows need at least 2 residues (model.max_len >= 4)");
  if (n <= w) return {ResidueWindow{0, n, 0, n}};
  const int64_t stride = w / 2;
  std::vector<int64_t> starts;
  for (int64_t a = 0; a + w < n; a += stride) starts.push_back(a);
  starts.push_back(n - w);  // the last window ends at the protein's end
  std::vector<ResidueWindow> out;
  for (size_t k = 0; k < starts.size(); ++k) {
    ResidueWindow r{starts[k], w, 0, n};
    // The boundary with a neighbour is the middle of the overlap: [next start, this end).
    if (k > 0) r.keep_begin = (starts[k] + starts[k - 1] + w) / 2;
    if (k + 1 < starts.size()) r.keep_end = (starts[k + 1] + starts[k] + w) / 2;
    out.push_back(r);
  }
  return out;
}

int64_t embedding_tokens(int64_t n, int64_t w) {
  int64_t tokens = 0;
  for (const ResidueWindow& r : embedding_windows(n, w)) tokens += r.length + 2;
  return tokens;
}

const std::vector<std::string>& pooling_names() {
  static const std::vector<std::string> names = {"mean", "cls", "both"};
  return names;
}
Pooling parse_pooling(const std::string& s) { return parse_name<Pooling>(s, pooling_names(), "--pool"); }

std::vector<int64_t> resolve_layers(const std::vector<int64_t>& asked, int64_t model_layers) {
  if (asked.empty()) throw Error("embed: no layers asked for");
  // Hidden states 0..L (0 = the embeddings, L = the last block after the final norm), negatives from the end.
  return resolve_indices(asked, model_layers + 1, "--layers (0 = the embeddings, -1 = the last layer)");
}

std::vector<ProteinEmbedding> embed_proteins(Encoder& model, const std::vector<std::string>& proteins,
                                             const EmbedOptions& o, const torch::Device& device) {
  const int64_t W = model->config().max_len - 2, D = model->config().d_model;
  if (o.tokens_per_batch < W + 2)
    throw Error("embed: --tokens-per-batch " + std::to_string(o.tokens_per_batch) + " is below the model's max_len " +
                std::to_string(W + 2));
  const bool mean = o.pool != Pooling::kCls, cls = o.pool != Pooling::kMean;
  const size_t layers = o.layers.size();
  // Every window of every protein, sorted by length so that batches pad little.
  struct Item {
    size_t protein;
    ResidueWindow window;
  };
  std::vector<Item> items;
  for (size_t p = 0; p < proteins.size(); ++p)
    for (const ResidueWindow& w : embedding_windows(static_cast<int64_t>(proteins[p].size()), W)) items.push_back({p, w});
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.window.length < b.window.length; });

  std::vector<ProteinEmbedding> out(proteins.size());
  for (size_t p = 0; p < proteins.size(); ++p) {
    const auto n = static_cast<int64_t>(proteins[p].size());
    for (size_t k = 0; k < layers; ++k) {
      out[p].mean.push_back(mean ? torch::zeros({D}) : at::Tensor());
      out[p].cls.push_back(at::Tensor());
      out[p].residues.push_back(o.per_residue ? torch::empty({n, D}) : at::Tensor());
    }
  }
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  for (size_t first = 0; first < items.size();) {
    if (o.stop != nullptr && o.stop->load()) {
      if (was_training) model->train();
      return {};
    }
    // Sorted ascending: the batch's longest row is its last one.
    size_t end = first + 1;
    while (end < items.size() &&
           static_cast<int64_t>(end + 1 - first) * (items[end].window.length + 2) <= o.tokens_per_batch)
      ++end;
    const auto B = static_cast<int64_t>(end - first);
    const int64_t width = items[end - 1].window.length + 2;
    at::Tensor tokens = torch::full({B, width}, static_cast<int64_t>(Alphabet::kPad), torch::kLong);
    at::Tensor mask = torch::zeros({B, width}, torch::kBool);
    auto t = tokens.accessor<int64_t, 2>();
    auto m = mask.accessor<bool, 2>();
    for (int64_t r = 0; r < B; ++r) {
      const Item& it = items[first + static_cast<size_t>(r)];
      const std::string& seq = proteins[it.protein];
      t[r][0] = Alphabet::kCls;
      for (int64_t i = 0; i < it.window.length; ++i) {
        const int id = Alphabet::residue_id(seq[static_cast<size_t>(it.window.start + i)]);
        if (id < 0) throw Error("embed: protein " + std::to_string(it.protein + 1) + " has a letter outside the alphabet");
        t[r][1 + i] = id;
      }
      t[r][it.window.length + 1] = Alphabet::kEos;
      for (int64_t i = 0; i < it.window.length + 2; ++i) m[r][i] = true;
    }
    EncoderImpl::LayerStates states{o.layers, {}};
    model->hidden(tokens.to(device), mask.to(device), nullptr, &states);
    for (size_t k = 0; k < layers; ++k) {
      const at::Tensor h = states.states[k].to(torch::kCPU, torch::kFloat);  // [B, width, D]
      for (int64_t r = 0; r < B; ++r) {
        const Item& it = items[first + static_cast<size_t>(r)];
        ProteinEmbedding& e = out[it.protein];
        // Residue i of the protein is at position 1 + i - start of the row.
        const at::Tensor kept = h[r].narrow(0, 1 + it.window.keep_begin - it.window.start,
                                            it.window.keep_end - it.window.keep_begin);
        if (mean) e.mean[k] += kept.sum(0);
        if (o.per_residue) e.residues[k].narrow(0, it.window.keep_begin, kept.size(0)).copy_(kept);
        if (cls && it.window.start == 0) e.cls[k] = h[r][0].clone();
      }
    }
    first = end;
  }
  if (mean)
    for (size_t p = 0; p < proteins.size(); ++p)
      for (size_t k = 0; k < layers; ++k) out[p].mean[k] /= static_cast<double>(std::max<size_t>(proteins[p].size(), 1));
  if (was_training) model->train();
  return out;
}

}  // namespace performer
