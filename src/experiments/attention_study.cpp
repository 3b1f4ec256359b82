#include "experiments/attention_study.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "analysis/substitution.h"
#include "data/sequence_reader.h"
#include "io/csv.h"
#include "io/hdf5.h"
#include "io/png.h"
#include "train/trainer.h"
#include "util/device.h"
#include "util/error.h"
#include "util/files.h"
#include "util/report.h"
#include "util/names.h"
#include "util/text.h"

namespace performer {

namespace fs = std::filesystem;

namespace {

// The files attention writes under --out (the per-protein heatmaps go into --out/png/) must not be any of
// its inputs.
void check_outputs(const AttentionStudy& a) {
  std::vector<InputFile> inputs{{"--checkpoint", a.checkpoint}, {"--blosum", a.blosum}};
  for (const std::string& in : a.inputs) inputs.push_back({"--input", in});
  std::vector<std::string> outputs{a.out, (fs::path(a.out) / "png").string()};
  for (const char* name : {"attention.h5", "similarity.csv", "correlations.csv", "aa_attention.csv",
                           "target_similarity.csv", "blosum_vs_attention.png"})
    outputs.push_back((fs::path(a.out) / name).string());
  refuse_overwriting_inputs("--out", outputs, inputs);
}

// A matrix for a heatmap (NaN drawn as 0).
std::vector<float> for_picture(const std::vector<double>& m) {
  std::vector<float> out;
  for (double v : m) out.push_back(std::isnan(v) ? 0.0f : static_cast<float>(v));
  return out;
}

void write_matrix_csv(const std::string& path, const std::vector<double>& m) {
  const std::string aa(Alphabet::kResidues.substr(0, 20));
  std::vector<std::string> columns{"aa"};
  for (char ch : aa) columns.emplace_back(1, ch);
  CsvWriter out(path, columns);
  for (int i = 0; i < 20; ++i) {
    CsvRow row;
    row << std::string(1, aa[static_cast<size_t>(i)]);
    for (int j = 0; j < 20; ++j) row << m[static_cast<size_t>(i * 20 + j)];
    out.write(row);
  }
}

// One row of the comparison: a measure and statistic, the variants side by side.
struct SimilarityRow {
  const char* measure;
  const char* statistic;
  double value[kVariants];
};

// similarity.csv and the console table, with the verdict per row and what it means.
void report_similarity_table(const SimilarityStudy& study, const std::vector<VariantSummary>& sum, int64_t heads_total,
                             const std::string& out_dir) {
  std::vector<SimilarityRow> rows(3);
  rows[0] = {"target_shares", "pearson", {}};
  rows[1] = {"pairwise_ratio", "mean_head_pearson", {}};
  rows[2] = {"pairwise_ratio", "best_head_pearson", {}};
  for (int v = 0; v < kVariants; ++v) {
    rows[0].value[v] = sum[static_cast<size_t>(v)].targets.pearson;
    rows[1].value[v] = sum[static_cast<size_t>(v)].pairwise_mean;
    rows[2].value[v] = sum[static_cast<size_t>(v)].pairwise_best;
  }
  // "Above the nulls" means by more than two standard errors of a correlation over 190 pairs under no
  // association (Fisher: 1/sqrt(190 - 3) = 0.073); n/a where the trained figure or a null is undefined.
  const double margin = 2.0 / std::sqrt(187.0);
  auto verdict = [margin](const SimilarityRow& r) -> std::string {
    const double t = r.value[0], p = r.value[2], s = r.value[3];
    if (std::isnan(t) || std::isnan(p) || std::isnan(s)) return "n/a";
    return t > p + margin && t > s + margin ? "yes" : "no";
  };
  CsvWriter csv((fs::path(out_dir) / "similarity.csv").string(),
                {"measure", "statistic", "trained", "init", "positional_null", "shuffled", "trained_above_both_nulls"});
  std::printf("amino-acid similarity of attention vs BLOSUM62 (Pearson over the 190 pairs; %lld proteins):\n",
              static_cast<long long>(study.proteins()));
  std::printf("  %-34s %8s %8s %11s %9s  %s\n", "measure", "trained", "init", "positional", "shuffled",
              "trained above both nulls (by > 0.146)");
  for (const SimilarityRow& r : rows) {
    CsvRow row;
    row << r.measure << r.statistic;
    for (double x : r.value) row << x;
    csv.write(row << verdict(r));
    const std::string name = std::string(r.measure) + " (" + r.statistic + ")";
    std::printf("  %-34s %8s %8s %11s %9s  %s\n", name.c_str(), figure3(r.value[0]).c_str(),
                figure3(r.value[1]).c_str(), figure3(r.value[2]).c_str(), figure3(r.value[3]).c_str(),
                verdict(r).c_str());
  }
  std::printf("  (target shares: %lld of %lld trained heads have attention above %.2g; %lld of 190 pairs defined, "
              "a figure needs %lld)\n",
              static_cast<long long>(sum[0].target_heads_used), static_cast<long long>(heads_total),
              study.threshold(), static_cast<long long>(sum[0].targets.pairs), static_cast<long long>(kMinTargetPairs));
  if (std::isnan(rows[0].value[0]))
    std::printf("  target shares: undefined for this model (too few amino acids receive attention above %.2g in some "
                "heads and not in others)\n", study.threshold());
  else if (verdict(rows[0]) == "yes")
    std::printf("  target shares: the trained model's heads treat amino acids alike in line with BLOSUM62 beyond what "
                "position or composition explain\n");
  else
    std::printf("  target shares: the trained figure is not clearly above both nulls (%s), so it is no evidence that "
                "the model learned substitution similarity\n", verdict(rows[0]).c_str());
}

// correlations.csv: every head of the pairwise measure and the target-share figure, per variant.
void write_correlations(const SimilarityStudy& study, const std::vector<int64_t>& layers, int64_t H,
                        const std::string& out_dir) {
  CsvWriter cc((fs::path(out_dir) / "correlations.csv").string(),
               {"measure", "variant", "layer", "head", "pearson", "spearman", "pairs"});
  for (int v = 0; v < kVariants; ++v) {
    const Variant var = variant_at(v);
    const PairCorrelation t = study.target_correlation(var);
    cc.write(CsvRow() << "target_shares" << variant_name(var) << "all" << "all" << t.pearson << t.spearman << t.pairs);
    for (size_t s = 0; s < layers.size(); ++s)
      for (int64_t h = 0; h < H; ++h) {
        const PairCorrelation r = study.head_correlation(var, static_cast<int64_t>(s), h);
        cc.write(CsvRow() << "pairwise_ratio" << variant_name(var) << layers[s] << h << r.pearson << r.spearman
                          << r.pairs);
      }
  }
}

// attention.h5: every variant's pairwise matrices (/pairwise) and target shares (/target_shares).
void write_similarity_h5(const SimilarityStudy& study, const std::vector<VariantSummary>& sum,
                         const std::vector<int64_t>& layers, int64_t H, hid_t file) {
  h5::Handle pw = h5::create_group(file, "pairwise");
  h5::Handle ts = h5::create_group(file, "target_shares");
  h5::write_attr(ts, "threshold", study.threshold());
  for (int v = 0; v < kVariants; ++v) {
    const Variant var = variant_at(v);
    h5::Handle g = h5::create_group(pw, variant_name(var));
    for (size_t s = 0; s < layers.size(); ++s) {
      std::vector<double> all;
      for (int64_t h = 0; h < H; ++h) {
        auto m = study.pairwise(var, static_cast<int64_t>(s)).matrix(h);
        all.insert(all.end(), m.begin(), m.end());
      }
      h5::write_array<double>(g, "layer_" + std::to_string(layers[s]), {static_cast<hsize_t>(H), 20, 20}, all.data());
    }
    h5::Handle t = h5::create_group(ts, variant_name(var));
    const auto shares = study.targets(var).shares();
    const auto similarity = study.targets(var).similarity();
    h5::write_array<double>(t, "shares", {static_cast<hsize_t>(study.targets(var).heads()), 20}, shares.data());
    h5::write_array<double>(t, "similarity", {20, 20}, similarity.data());
    h5::write_attr(t, "pearson", sum[static_cast<size_t>(v)].targets.pearson);
    h5::write_attr(t, "spearman", sum[static_cast<size_t>(v)].targets.spearman);
    h5::write_attr(t, "heads_used", sum[static_cast<size_t>(v)].target_heads_used);
  }

}

// The best trained head's pairwise matrix, the trained target-share similarity (CSV), and the picture.
void write_similarity_pictures(const SimilarityStudy& study, const std::vector<VariantSummary>& sum,
                               const std::vector<int64_t>& layers, const std::string& out_dir) {
  const VariantSummary& tr = sum[0];
  const std::vector<double> best = study.pairwise(Variant::kTrained, tr.best_slot).matrix(tr.best_head);
  const std::vector<double> similarity = study.targets(Variant::kTrained).similarity();
  write_matrix_csv((fs::path(out_dir) / "aa_attention.csv").string(), best);
  write_matrix_csv((fs::path(out_dir) / "target_similarity.csv").string(), similarity);
  std::vector<std::string> labels;
  for (char ch : Alphabet::kResidues.substr(0, 20)) labels.emplace_back(1, ch);
  std::vector<float> bf;
  for (double v : study.blosum()) bf.push_back(static_cast<float>(v));
  const std::string t1 = "target shares, trained r=" + figure3(tr.targets.pearson) + " (pos " +
                         figure3(sum[2].targets.pearson) + ", shuf " + figure3(sum[3].targets.pearson) + ")";
  const std::string t2 = "pairwise ratio, layer " + std::to_string(layers[static_cast<size_t>(tr.best_slot)]) + " head " +
                         std::to_string(tr.best_head) + " r=" + figure3(tr.pairwise_best) + " (pos best " +
                         figure3(sum[2].pairwise_best) + ")";
  write_png((fs::path(out_dir) / "blosum_vs_attention.png").string(),
            side_by_side({heatmap(for_picture(similarity), 20, 20, t1, labels, labels),
                          heatmap(for_picture(best), 20, 20, t2, labels, labels),
                          heatmap(bf, 20, 20, "BLOSUM62", labels, labels)}));
}

// Writes the study's tables, HDF5 groups and picture, and prints the comparison; layers are the model
// layers behind the study's slots.
void report_similarity(const SimilarityStudy& study, const std::vector<int64_t>& layers, int64_t H,
                       const std::string& out_dir, hid_t file) {
  std::vector<VariantSummary> sum;
  for (int v = 0; v < kVariants; ++v) sum.push_back(study.summary(variant_at(v)));
  report_similarity_table(study, sum, H * static_cast<int64_t>(layers.size()), out_dir);
  write_correlations(study, layers, H, out_dir);
  write_similarity_h5(study, sum, layers, H, file);
  write_similarity_pictures(study, sum, layers, out_dir);
}

// A protein as the analysis sees it: its first `window` residues.
struct Protein {
  std::string accession, residues;
};

// The proteins the command analyses (the first --max-sequences of the inputs), read before any output is
// written so that a malformed input fails first.
std::vector<Protein> read_proteins(const std::vector<std::string>& inputs, const ReaderOptions& options,
                                   int64_t max_sequences, int64_t window) {
  std::vector<Protein> out;
  for (const auto& path : inputs) {
    SequenceReader reader(path, options);
    SequenceRecord rec;
    while (static_cast<int64_t>(out.size()) < max_sequences && reader.next(rec))
      out.push_back({rec.accession, rec.residues.substr(0, static_cast<size_t>(window))});
    warn_about(path, reader.counts(), options.gaps);
  }
  if (out.empty()) throw Error("attention: no proteins in the input");
  return out;
}

// Peak memory of the maps of one protein of n residues (L = n + 2 tokens), in bytes: per chosen layer the
// trained and the initial model's [H, L, L] float32 maps and their residue-only copies (4 per layer), plus
// about four more alive while a map is computed and aggregated (scores, their exponentials, the study's
// temporaries).
double map_bytes(int64_t n, int64_t heads, int64_t layers) {
  const double L = static_cast<double>(n + 2);
  return 4.0 * static_cast<double>(heads) * L * L * (4.0 * static_cast<double>(layers) + 4.0);
}

// Refuses, before any allocation, proteins whose maps do not fit in the device's memory, naming the
// need and the --max-residues that would fit.
void check_map_memory(const std::vector<Protein>& proteins, int64_t heads, int64_t layers, const torch::Device& device) {
  const auto longest = std::max_element(proteins.begin(), proteins.end(), [](const Protein& x, const Protein& y) {
    return x.residues.size() < y.residues.size();
  });
  const auto n = static_cast<int64_t>(longest->residues.size());
  const double need = map_bytes(n, heads, layers), have = static_cast<double>(device_memory_bytes(device));
  if (have <= 0 || need <= have) return;
  int64_t fits = n;
  while (fits > 1 && map_bytes(fits, heads, layers) > have) fits = fits * 9 / 10;
  throw Error("attention: " + longest->accession + " has " + std::to_string(n) + " residues; its attention maps need about " +
              human_bytes(need) + " (" + std::to_string(layers) + " layers x " + std::to_string(heads) +
              " heads x L^2 x 4 bytes, trained and initial model, whole maps, not row blocks) but the " +
              (device.is_cuda() ? "GPU" : "machine") + " has " + human_bytes(have) + "; use --max-residues " +
              std::to_string(fits) + " or fewer --layers");
}

// Writes one protein's maps of the exported heads: HDF5 group and one PNG per layer and head.
void export_protein(const Protein& p, const std::vector<at::Tensor>& maps, const std::vector<int64_t>& layers,
                    const std::vector<int64_t>& heads, const std::string& kind, hid_t group, const fs::path& png_dir) {
  const auto n = static_cast<hsize_t>(p.residues.size());
  fs::create_directories(png_dir);
  h5::Handle pg = h5::create_group(group, safe_name(p.accession));
  h5::write_attr(pg, "heads", std::vector<int64_t>(heads.begin(), heads.end()));
  h5::write_attr(pg, "sequence", p.residues);
  h5::write_attr(pg, "accession", p.accession);
  for (size_t l = 0; l < layers.size(); ++l) {
    const at::Tensor& A = maps[l];
    at::Tensor chosen = A.index_select(0, torch::tensor(heads, torch::kLong)).contiguous();
    h5::write_array<float>(pg, "layer_" + std::to_string(layers[l]), {static_cast<hsize_t>(heads.size()), n, n},
                           chosen.data_ptr<float>());
    for (int64_t h : heads) {
      at::Tensor head = A[h].contiguous();
      std::vector<float> v(head.data_ptr<float>(), head.data_ptr<float>() + head.numel());
      const std::string title = p.accession + " layer " + std::to_string(layers[l]) + " head " + std::to_string(h) +
                                " (" + kind + ", rows: attending residue)";
      const std::string name = safe_name(p.accession) + "_layer" + std::to_string(layers[l]) + "_head" + std::to_string(h);
      write_png((png_dir / (name + ".png")).string(), heatmap(v, static_cast<int>(n), static_cast<int>(n), title));
    }
  }
}

// The maps of the chosen layers for one protein, restricted to residues: [H, n, n] float32 on the CPU,
// rows renormalized.
std::vector<at::Tensor> residue_maps(Encoder& model, const std::vector<Token>& ids, const std::vector<int64_t>& layers,
                                     const torch::Device& device) {
  const auto n = static_cast<int64_t>(ids.size()) - 2;
  at::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong).unsqueeze(0).to(device);
  std::vector<at::Tensor> out;
  for (const at::Tensor& m : model->attention_maps(t, torch::ones_like(t, torch::kBool), layers)) {
    at::Tensor r = m[0].narrow(1, 1, n).narrow(2, 1, n).to(torch::kFloat).cpu();
    out.push_back((r / r.sum(-1, true).clamp_min(1e-30)).contiguous());
  }
  return out;
}

}  // namespace

int run_attention_study(const AttentionStudy& a) {
  check_outputs(a);
  const SubstitutionMatrix blosum = read_substitution_matrix(a.blosum);  // a bad matrix file fails before any work
  const torch::Device device = resolve_device(a.device, "--device");
  RunConfig c;
  Encoder model = model_from_checkpoint(a.checkpoint, c, device);
  const Precision precision = resolve_precision(parse_precision(a.precision, "--precision"), device);
  if (c.model.causal) throw Error("attention: the substitution-matrix analysis expects a bidirectional model");
  const std::vector<int64_t> layers = parse_index_list(a.layers, c.model.layers, "--layers");
  const std::vector<int64_t> heads = parse_index_list(a.heads, c.model.heads, "--heads");  // exported maps
  const int64_t H = c.model.heads;
  const int64_t window = a.max_residues > 0 ? std::min(a.max_residues, c.model.max_len - 2) : c.model.max_len - 2;
  const std::vector<Protein> proteins = read_proteins(a.inputs, a.reader, a.max_sequences, window);
  check_map_memory(proteins, H, static_cast<int64_t>(layers.size()), device);
  Encoder init(c.model);  // the same architecture at initialization (same seed as the run's start)
  init->to(device);
  init->eval();

  const fs::path png_dir = fs::path(a.out) / "png";
  fs::create_directories(a.out);  // png/ is made with its first picture
  const std::string h5_path = (fs::path(a.out) / "attention.h5").string();
  AtomicFile h5_out(h5_path);  // no half-written attention.h5 after an error
  SimilarityStudy study(static_cast<int64_t>(layers.size()), H, window, blosum.standard_block(), a.seed, a.threshold);
  int64_t residues = 0;
  torch::NoGradGuard no_grad;
  const AutocastScope autocast(device, precision);  // projections and feed-forward layers; maps in float32
  {
    h5::Handle file = h5::create_file(h5_out.temporary());
    h5::write_attr(file, "precision", precision_name(precision));
    h5::write_attr(file, "checkpoint", fs::absolute(a.checkpoint).string());
    h5::write_attr(file, "model", c.model.describe());
    h5::Handle group = h5::create_group(file, "proteins");
    for (size_t i = 0; i < proteins.size(); ++i) {
      const std::vector<Token> ids = Alphabet::encode(proteins[i].residues);
      const std::vector<at::Tensor> trained = residue_maps(model, ids, layers, device);
      study.add(trained, residue_maps(init, ids, layers, device), std::vector<Token>(ids.begin() + 1, ids.end() - 1));
      if (static_cast<int64_t>(i) < a.exported)
        export_protein(proteins[i], trained, layers, heads, attention_kind_name(c.model.kind), group, png_dir);
      residues += static_cast<int64_t>(proteins[i].residues.size());
    }
    std::printf("%s: %zu proteins, %lld residues, %zu layers x %lld heads\n", a.checkpoint.c_str(), proteins.size(),
                static_cast<long long>(residues), layers.size(), static_cast<long long>(H));
    study.finish();
    report_similarity(study, layers, H, a.out, file);
    h5::flush_file(file);
  }
  h5_out.commit();
  const int64_t exported = std::min(static_cast<int64_t>(proteins.size()), a.exported);
  std::printf("wrote %s, similarity.csv, correlations.csv, aa_attention.csv, target_similarity.csv, "
              "blosum_vs_attention.png and %lld heatmaps in %s\n",
              h5_path.c_str(), static_cast<long long>(exported * static_cast<int64_t>(layers.size() * heads.size())),
              png_dir.string().c_str());
  return 0;
}

}  // namespace performer
