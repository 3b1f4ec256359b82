// performer attention --checkpoint CKPT --input FASTA... --out DIR [--layers all|0,3] [--max-sequences 500]
//                     [--export 3] [--blosum data/BLOSUM62]
//
// 1. Attention maps: for the first --export proteins, the attention probabilities of every chosen layer
//    and head as the model applies them (softmax for exact models, the implicit D^-1 phi(Q) phi(K)^T with
//    the model's own features for FAVOR), restricted to residues (<cls>/<eos> rows and columns removed,
//    rows renormalized), to attention.h5 (/proteins/<accession>/layer_<l> [heads, n, n], float32, the
//    --heads chosen, listed in the group's "heads" attribute) and one PNG
//    heatmap per layer and head (png/<accession>_layer<l>_head<h>.png).
// 2. Amino-acid similarity: over the first --max-sequences proteins, attention between amino-acid types per
//    head (analysis/aa_attention.h), correlated with BLOSUM62 over the 190 off-diagonal pairs (Pearson and
//    Spearman), for the trained model and for the same architecture at initialization. Outputs
//    correlations.csv (every head), aa_attention.csv (the best head's 20 x 20 matrix), attention.h5
//    (/aa_attention/layer_<l> and /aa_attention_init/layer_<l>, [H, 20, 20]) and
//    blosum_vs_attention.png (best head beside BLOSUM62).
// Proteins longer than the model's max_len - 2 residues are represented by their first max_len - 2.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "analysis/aa_attention.h"
#include "analysis/substitution.h"
#include "cli/commands.h"
#include "data/sequence_reader.h"
#include "io/hdf5.h"
#include "io/png.h"
#include "train/trainer.h"
#include "util/error.h"

namespace performer::cli {

namespace fs = std::filesystem;

namespace {

struct AttentionArgs {
  std::string checkpoint, out, layers = "all", heads = "all", blosum = "data/BLOSUM62", device = "auto";
  std::vector<std::string> inputs;
  int64_t max_sequences = 500, exported = 3;
};

// "all" or a comma-separated list of indices in [0, n); `what` names the option in errors.
std::vector<int64_t> parse_indices(const std::string& s, int64_t n, const char* what) {
  std::vector<int64_t> out;
  if (s == "all") {
    for (int64_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0 || v >= n)
      throw Error(std::string(what) + ": '" + item + "' is not in 0.." + std::to_string(n - 1) + " for this model");
    out.push_back(v);
  }
  return out;
}

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s) out.push_back(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ? c : '_');
  return out;
}

struct HeadCorrelation {
  int64_t layer, head;
  double pearson, spearman, init_pearson, init_spearman;
};

int run_attention(const AttentionArgs& a) {
  if (a.inputs.empty()) throw Error("attention: --input FILE... is required");
  if (a.out.empty()) throw Error("attention: --out DIR is required");
  const SubstitutionMatrix blosum = read_substitution_matrix(a.blosum);
  const std::vector<double> blosum_off = off_diagonal(blosum.standard_block(), Alphabet::kStandardAminoAcids);
  const torch::Device device = resolve_device(a.device);
  RunConfig c;
  Encoder model = model_from_checkpoint(a.checkpoint, c, device);
  if (c.model.causal) throw Error("attention: the substitution-matrix analysis expects a bidirectional model");
  Encoder init(c.model);  // the same architecture at initialization (same seed as the run's start)
  init->to(device);
  init->eval();
  const std::vector<int64_t> layers = parse_indices(a.layers, c.model.layers, "--layers");
  const std::vector<int64_t> heads = parse_indices(a.heads, c.model.heads, "--heads");  // exported maps
  const int64_t H = c.model.heads, window = c.model.max_len - 2;

  fs::create_directories(fs::path(a.out) / "png");
  const std::string h5_path = (fs::path(a.out) / "attention.h5").string();
  const std::string h5_tmp = h5_path + ".tmp-" + std::to_string(::getpid());
  std::vector<AaAttention> trained(layers.size(), AaAttention(H)), initial(layers.size(), AaAttention(H));
  int64_t proteins = 0, residues = 0;
  torch::NoGradGuard no_grad;
  struct Cleanup {  // no half-written attention.h5 after an error
    std::string path;
    bool armed = true;
    ~Cleanup() {
      if (armed) std::remove(path.c_str());
    }
  } cleanup{h5_tmp};
  {
    h5::Handle file = h5::create_file(h5_tmp);
    h5::write_attr(file, "checkpoint", fs::absolute(a.checkpoint).string());
    h5::write_attr(file, "model", c.model.describe());
    h5::Handle group = h5::create_group(file, "proteins");
    for (const auto& path : a.inputs) {
      SequenceReader reader(path);
      SequenceRecord rec;
      while (proteins < a.max_sequences && reader.next(rec)) {
        const std::string seq = rec.residues.substr(0, static_cast<size_t>(window));
        const std::vector<Token> ids = Alphabet::encode(seq);
        const std::vector<Token> res(ids.begin() + 1, ids.end() - 1);
        const auto n = static_cast<int64_t>(res.size());
        at::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong).unsqueeze(0).to(device);
        at::Tensor mask = torch::ones_like(t, torch::kBool);
        auto maps = model->attention_maps(t, mask, layers);
        auto maps0 = init->attention_maps(t, mask, layers);
        const bool export_this = proteins < a.exported;
        h5::Handle pg;
        if (export_this) {
          pg = h5::create_group(group, safe_name(rec.accession));
          h5::write_attr(pg, "heads", std::vector<int64_t>(heads.begin(), heads.end()));
          h5::write_attr(pg, "sequence", seq);
          h5::write_attr(pg, "accession", rec.accession);
        }
        for (size_t l = 0; l < layers.size(); ++l) {
          auto residues_only = [&](const at::Tensor& m) {  // [1,H,L,L] -> [H,n,n], rows renormalized
            at::Tensor r = m[0].narrow(1, 1, n).narrow(2, 1, n).to(torch::kFloat).cpu();
            return (r / r.sum(-1, true).clamp_min(1e-30)).contiguous();
          };
          at::Tensor A = residues_only(maps[l]);
          trained[l].add(A, res);
          initial[l].add(residues_only(maps0[l]), res);
          if (!export_this) continue;
          at::Tensor chosen = A.index_select(0, torch::tensor(heads, torch::kLong)).contiguous();
          h5::write_array<float>(pg, "layer_" + std::to_string(layers[l]),
                                 {static_cast<hsize_t>(heads.size()), static_cast<hsize_t>(n), static_cast<hsize_t>(n)},
                                 chosen.data_ptr<float>());
          for (int64_t h : heads) {
            at::Tensor head = A[h].contiguous();
            std::vector<float> v(head.data_ptr<float>(), head.data_ptr<float>() + head.numel());
            const std::string title = rec.accession + " layer " + std::to_string(layers[l]) + " head " + std::to_string(h) +
                                      " (" + attention_kind_name(c.model.kind) + ", rows: attending residue)";
            write_png((fs::path(a.out) / "png" /
                       (safe_name(rec.accession) + "_layer" + std::to_string(layers[l]) + "_head" + std::to_string(h) + ".png"))
                          .string(),
                      heatmap(v, static_cast<int>(n), static_cast<int>(n), title));
          }
        }
        ++proteins;
        residues += n;
      }
      if (proteins >= a.max_sequences) break;
    }
    if (proteins == 0) throw Error("attention: no proteins in the input");
    // Correlations with BLOSUM62 per head, trained and at initialization.
    h5::Handle aa = h5::create_group(file, "aa_attention");
    h5::Handle aa0 = h5::create_group(file, "aa_attention_init");
    std::vector<HeadCorrelation> corr;
    for (size_t l = 0; l < layers.size(); ++l) {
      std::vector<double> all, all0;
      for (int64_t h = 0; h < H; ++h) {
        auto m = trained[l].matrix(h), m0 = initial[l].matrix(h);
        all.insert(all.end(), m.begin(), m.end());
        all0.insert(all0.end(), m0.begin(), m0.end());
        auto off = off_diagonal(m, 20), off0 = off_diagonal(m0, 20);
        corr.push_back({layers[l], h, pearson(off, blosum_off), spearman(off, blosum_off), pearson(off0, blosum_off),
                        spearman(off0, blosum_off)});
      }
      const std::vector<hsize_t> dims = {static_cast<hsize_t>(H), 20, 20};
      h5::write_array<double>(aa, "layer_" + std::to_string(layers[l]), dims, all.data());
      h5::write_array<double>(aa0, "layer_" + std::to_string(layers[l]), dims, all0.data());
    }
    std::ofstream csv(fs::path(a.out) / "correlations.csv");
    csv << "layer,head,pearson,spearman,init_pearson,init_spearman\n";
    double mean_p = 0, mean_s = 0, mean_p0 = 0, mean_s0 = 0;
    const HeadCorrelation* best = &corr[0];
    const HeadCorrelation* best0 = &corr[0];
    for (auto& x : corr) {
      csv << x.layer << ',' << x.head << ',' << x.pearson << ',' << x.spearman << ',' << x.init_pearson << ','
          << x.init_spearman << '\n';
      mean_p += x.pearson / static_cast<double>(corr.size());
      mean_s += x.spearman / static_cast<double>(corr.size());
      mean_p0 += x.init_pearson / static_cast<double>(corr.size());
      mean_s0 += x.init_spearman / static_cast<double>(corr.size());
      if (x.pearson > best->pearson) best = &x;
      if (x.init_pearson > best0->init_pearson) best0 = &x;
    }
    std::printf("%s: %lld proteins, %lld residues, %zu layers x %lld heads\n", a.checkpoint.c_str(),
                static_cast<long long>(proteins), static_cast<long long>(residues), layers.size(), static_cast<long long>(H));
    std::printf("attention between amino-acid types vs BLOSUM62 (190 off-diagonal pairs):\n");
    std::printf("  trained:        best head layer %lld head %lld: Pearson %.3f, Spearman %.3f; mean over heads %.3f / %.3f\n",
                static_cast<long long>(best->layer), static_cast<long long>(best->head), best->pearson, best->spearman,
                mean_p, mean_s);
    std::printf("  initialization: best head layer %lld head %lld: Pearson %.3f, Spearman %.3f; mean over heads %.3f / %.3f\n",
                static_cast<long long>(best0->layer), static_cast<long long>(best0->head), best0->init_pearson,
                best0->init_spearman, mean_p0, mean_s0);
    // The best head's matrix (CSV) and the side-by-side picture.
    const size_t bl = static_cast<size_t>(std::find(layers.begin(), layers.end(), best->layer) - layers.begin());
    const std::vector<double> m = trained[bl].matrix(best->head);
    const std::string aa_names(Alphabet::kResidues.substr(0, 20));
    std::vector<std::string> labels;
    for (char ch : aa_names) labels.emplace_back(1, ch);
    std::ofstream mc(fs::path(a.out) / "aa_attention.csv");
    mc << "aa";
    for (auto& s : labels) mc << ',' << s;
    mc << '\n';
    for (int i = 0; i < 20; ++i) {
      mc << labels[static_cast<size_t>(i)];
      for (int j = 0; j < 20; ++j) mc << ',' << m[static_cast<size_t>(i * 20 + j)];
      mc << '\n';
    }
    std::vector<float> mf(m.begin(), m.end()), bf;
    for (double v : blosum.standard_block()) bf.push_back(static_cast<float>(v));
    char title[160];
    std::snprintf(title, sizeof title, "attention ratio, layer %lld head %lld (r=%.2f)", static_cast<long long>(best->layer),
                  static_cast<long long>(best->head), best->pearson);
    write_png((fs::path(a.out) / "blosum_vs_attention.png").string(),
              side_by_side({heatmap(mf, 20, 20, title, labels, labels), heatmap(bf, 20, 20, "BLOSUM62", labels, labels)}));
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) throw Error(h5_tmp + ": cannot flush (disk full?)");
  }
  fs::rename(h5_tmp, h5_path);
  cleanup.armed = false;
  std::printf("wrote %s, correlations.csv, aa_attention.csv, blosum_vs_attention.png and %lld heatmaps in %s/png\n",
              h5_path.c_str(),
              static_cast<long long>(std::min(proteins, a.exported) * static_cast<int64_t>(layers.size() * heads.size())),
              a.out.c_str());
  return 0;
}

}  // namespace

void add_attention(CLI::App& app, Action& run) {
  auto a = std::make_shared<AttentionArgs>();
  auto* cmd = app.add_subcommand("attention", "Export attention maps (HDF5 + PNG) and compare them with BLOSUM62");
  cmd->add_option("--checkpoint", a->checkpoint, "checkpoint (.h5) written by performer train")->required();
  cmd->add_option("-i,--input", a->inputs, "FASTA or UniProt files")->required();
  cmd->add_option("--out", a->out, "output folder")->required();
  cmd->add_option("--layers", a->layers, "'all' or comma-separated layer indices (0-based)")->capture_default_str();
  cmd->add_option("--heads", a->heads, "'all' or comma-separated heads whose maps are exported (all heads are "
                                       "used for the BLOSUM62 comparison)")->capture_default_str();
  cmd->add_option("--max-sequences", a->max_sequences, "proteins aggregated for the BLOSUM62 comparison")->capture_default_str();
  cmd->add_option("--export", a->exported, "proteins whose maps are written (HDF5 + PNG)")->capture_default_str();
  cmd->add_option("--blosum", a->blosum, "substitution matrix in NCBI text format")->capture_default_str();
  cmd->add_option("--device", a->device, "auto | cpu | cuda")->capture_default_str();
  cmd->callback([&run, a] { run = [a] { return run_attention(*a); }; });
}

}  // namespace performer::cli
