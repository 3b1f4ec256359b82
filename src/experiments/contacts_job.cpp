#include "experiments/contacts_job.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "analysis/contact_metrics.h"
#include "analysis/contacts.h"
#include "data/alphabet.h"
#include "io/csv.h"
#include "io/hdf5.h"
#include "io/line_reader.h"
#include "io/png.h"
#include "io/structure.h"
#include "train/trainer.h"
#include "util/clock.h"
#include "util/device.h"
#include "util/error.h"
#include "util/files.h"
#include "util/report.h"
#include "util/precision.h"
#include "util/text.h"

namespace performer {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRegressionKind = "performer contact regression";
constexpr const char* kFromCheckpoint = "checkpoint";  // --regression: the model's own (ESM-2) contact head
constexpr const char* kFeatures =
    "every layer x head attention map (layer-major), <cls>/<eos> rows and columns dropped, rows not "
    "renormalized, symmetrized (A + A^T), APC-corrected";

// A chain without SEQRES: its observed residues, with one unknown residue 'X' (no coordinates) for each
// residue number skipped where the chain is broken (consecutive C-alphas more than kBreak apart), so that
// sequence separations count a missing loop. A jump in numbering without a break is renumbering (tags
// numbered apart, a skipped 0, numbering by domain: 5 of the 50 mdanalysistests chains) and adds nothing;
// so does a jump beyond kMaxFilledGap.
std::pair<std::string, std::vector<int64_t>> sequence_from_numbering(const StructureChain& chain) {
  constexpr int64_t kMaxFilledGap = 200;
  constexpr double kBreak = 4.2;  // Angstrom; a peptide bond keeps C-alphas 3.8 A apart
  std::string seq;
  std::vector<int64_t> at;
  for (size_t r = 0; r < chain.residues.size(); ++r) {
    if (r > 0) {
      const StructureResidue &a = chain.residues[r - 1], &b = chain.residues[r];
      const int64_t gap = b.number - a.number - 1;
      double d2 = 0;
      for (int k = 0; k < 3; ++k) d2 += (a.ca[k] - b.ca[k]) * (a.ca[k] - b.ca[k]);
      const bool broken = a.has_ca && b.has_ca && std::sqrt(d2) > kBreak;
      if (broken && gap > 0 && gap <= kMaxFilledGap) {
        seq.append(static_cast<size_t>(gap), 'X');
        at.insert(at.end(), static_cast<size_t>(gap), -1);
      }
    }
    seq.push_back(chain.residues[r].code);
    at.push_back(static_cast<int64_t>(r));
  }
  return {seq, at};
}

// A protein with a structure, as fit and eval use it.
struct StructureProtein {
  int64_t length = 0;    // the chain's sequence length before the cut to the model's window
  std::string name, file, chain;
  std::string sequence;  // the model's input: SEQRES (else the observed residues), cut to the window
  int64_t observed = 0;  // residues of the sequence with a C-beta/C-alpha point
  ContactTruth truth;
  ScoredPairs pairs;
};

// The model, its settings and the precision, loaded once per command.
struct LoadedModel {
  RunConfig config;
  Encoder model{nullptr};
  torch::Device device{torch::kCPU};
  Precision precision = Precision::kFp32;
  int64_t window = 0;  // residues the model takes: max_len - 2
  int64_t channels() const { return config.model.layers * config.model.heads; }
};

LoadedModel load_model(const ContactsJob& job) {
  LoadedModel m;
  m.device = resolve_device(job.device, "--device");
  m.model = model_from_checkpoint(job.checkpoint, m.config, m.device);
  m.precision = resolve_precision(parse_precision(job.precision, "--precision"), m.device);
  if (m.config.model.causal)
    throw Error(job.checkpoint + ": a causal model's attention looks one way only; contacts need a bidirectional model");
  m.window = m.config.model.max_len - 2;
  return m;
}

// The contact features of one protein [layers x heads, n, n] (float32, CPU).
at::Tensor attention_features(LoadedModel& m, const std::string& name, const std::string& residues) {
  const std::vector<Token> ids = Alphabet::encode(residues);
  const auto n = static_cast<int64_t>(residues.size());
  at::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kLong).unsqueeze(0).to(m.device);
  std::vector<int64_t> layers(static_cast<size_t>(m.config.model.layers));
  std::iota(layers.begin(), layers.end(), int64_t{0});
  torch::NoGradGuard no_grad;
  const AutocastScope autocast(m.device, m.precision);  // projections and feed-forward; the maps are float32
  std::vector<at::Tensor> maps;
  for (const at::Tensor& a : m.model->attention_maps(t, torch::ones_like(t, torch::kBool), layers))
    maps.push_back(a[0].narrow(1, 1, n).narrow(2, 1, n).to(torch::kFloat).cpu());  // [H, n, n]
  at::Tensor f = contact_features(torch::cat(maps, 0));
  if (!torch::isfinite(f).all().item<bool>())
    throw Error("contacts: " + name + ": the model's attention maps hold NaN or infinite values (a diverged checkpoint?)");
  return f;
}

StructureProtein load_structure(const StructureEntry& e, int64_t window, double cutoff) {
  const StructureChain chain = read_structure(e.path, e.chain);
  StructureProtein p;
  p.file = e.path;
  p.chain = chain.chain;
  p.name = fs::path(e.path).filename().string();
  for (const char* ext : {".gz", ".pdb", ".mmcif", ".cif", ".ent"})
    if (p.name.size() > std::string(ext).size() && p.name.substr(p.name.size() - std::string(ext).size()) == ext)
      p.name.resize(p.name.size() - std::string(ext).size());
  if (!p.chain.empty() && p.chain != " ") p.name += "_" + p.chain;
  std::vector<int64_t> at;  // sequence position -> residue index, or -1
  if (!chain.seqres.empty()) {
    p.sequence = chain.seqres;
    at = align_to_sequence(chain, p.sequence);
  } else {
    std::tie(p.sequence, at) = sequence_from_numbering(chain);
  }
  p.length = static_cast<int64_t>(p.sequence.size());
  if (static_cast<int64_t>(p.sequence.size()) > window) {
    p.sequence.resize(static_cast<size_t>(window));
    at.resize(static_cast<size_t>(window));
  }
  std::vector<std::array<double, 3>> points(p.sequence.size());
  std::vector<uint8_t> known(p.sequence.size(), 0);
  for (size_t i = 0; i < at.size(); ++i) {
    if (at[i] < 0 || !chain.residues[at[i]].has_point) continue;
    points[i] = chain.residues[at[i]].point;
    known[i] = 1;
    ++p.observed;
  }
  p.truth = contacts_from_points(points, known, cutoff);
  p.pairs = scored_pairs(p.truth);
  if (p.pairs.size() == 0)
    throw Error(where(e.path) + ": chain '" + p.chain + "' has no residue pair at least " +
                std::to_string(kMinSeparation) + " apart with coordinates to score");
  return p;
}

std::vector<StructureProtein> load_structures(const std::string& list, int64_t window, double cutoff) {
  std::vector<StructureProtein> out;
  int64_t cut = 0;
  for (const StructureEntry& e : read_structure_list(list)) {
    try {
      out.push_back(load_structure(e, window, cutoff));
    } catch (const Error& error) {  // the structure's own error, prefixed with the list line that named it
      throw Error(where(list, e.line) + ": " + error.what());
    }
    cut += out.back().length > window ? 1 : 0;
  }
  if (cut > 0)
    std::fprintf(stderr, "note: %lld of %zu chains are longer than the model's window of %lld residues; their first %lld "
                 "residues are used\n", static_cast<long long>(cut), out.size(), static_cast<long long>(window),
                 static_cast<long long>(window));
  return out;
}

// ------------------------------------------------------------------------------------------- regression file

struct RegressionFile {
  ContactRegression regression;
  std::vector<std::string> fit_files;  // the chains it was fitted on
  double cutoff = 0;                   // its contact cutoff (0: not recorded)
  std::string source;                 // the file, or "the checkpoint's contact head"
  int64_t best_channel = -1;          // the single best head on the fit proteins (-1: none recorded)
  double best_fit_precision = std::nan("");
};

void write_regression_file(const ContactsJob& job, const LoadedModel& m, const ContactRegression& r,
                           const RegressionSettings& settings, const CvResult& cv,
                           const std::vector<StructureProtein>& proteins, int64_t best, double best_precision,
                           int64_t pairs, int64_t contacts) {
  AtomicFile out(job.out);
  {
    h5::Handle f = h5::create_file(out.temporary());
    h5::write_attr(f, "kind", kRegressionKind);
    h5::write_attr(f, "checkpoint", fs::absolute(job.checkpoint).string());
    h5::write_attr(f, "model", m.config.model.describe());
    h5::write_attr(f, "layers", m.config.model.layers);
    h5::write_attr(f, "heads", m.config.model.heads);
    h5::write_attr(f, "features", kFeatures);
    h5::write_attr(f, "solver", "LIBLINEAR L1R_LR (L1-regularized logistic regression, intercept penalized)");
    h5::write_attr(f, "C", settings.c);
    h5::write_attr(f, "C_chosen_by", job.c_auto ? "cross-validation over the proteins (mean held-out log-likelihood)" : "--c");
    if (job.c_auto) {
      h5::write_attr(f, "cv_grid", cv.grid);
      h5::write_attr(f, "cv_log_likelihood", cv.log_likelihood);
      h5::write_attr(f, "cv_folds", cv.folds);
    }
    h5::write_attr(f, "tolerance", settings.tolerance);
    h5::write_attr(f, "cutoff_angstrom", job.cutoff);
    h5::write_attr(f, "min_separation", kMinSeparation);
    h5::write_attr(f, "precision", precision_name(m.precision));
    h5::write_attr(f, "structures", fs::absolute(job.structures).string());
    std::vector<std::string> names, files;
    for (const auto& p : proteins) {
      names.push_back(p.name);
      files.push_back(fs::absolute(p.file).string());
    }
    h5::write_attr(f, "proteins", names);
    h5::write_attr(f, "files", files);
    h5::write_attr(f, "pairs", pairs);
    h5::write_attr(f, "contacts", contacts);
    h5::write_array<double>(f, "weight", {static_cast<hsize_t>(r.weight.size())}, r.weight.data());
    h5::write_attr(f, "bias", r.bias);
    h5::write_attr(f, "best_channel", best);
    h5::write_attr(f, "best_layer", best < 0 ? int64_t{-1} : best / m.config.model.heads);
    h5::write_attr(f, "best_head", best < 0 ? int64_t{-1} : best % m.config.model.heads);
    h5::write_attr(f, "best_head_fit_top_L_long", best_precision);
    h5::flush_file(f);
  }
  out.commit();
}

RegressionFile read_regression(const std::string& path, const LoadedModel& m, const std::string& checkpoint) {
  RegressionFile out;
  const int64_t C = m.channels();
  if (path == kFromCheckpoint) {
    if (m.config.model.lm_head != LmHead::kEsm || !m.model->contact_weight.defined() ||
        m.model->contact_weight.abs().sum().item<double>() == 0)
      throw Error(checkpoint + ": --regression checkpoint: this model has no contact regression of its own (models "
                  "imported from ESM-2 carry one); fit one with performer contacts fit");
    const at::Tensor w = m.model->contact_weight.to(torch::kDouble).cpu().reshape({-1}).contiguous();
    out.regression.weight.assign(w.data_ptr<double>(), w.data_ptr<double>() + w.numel());
    out.regression.bias = m.model->contact_bias.to(torch::kDouble).cpu().item<double>();
    out.source = "the checkpoint's contact regression";
    return out;
  }
  if (!h5::is_hdf5(path)) throw Error(path + ": not an HDF5 file (expected a regression written by performer contacts fit)");
  h5::Handle f = h5::open_file(path);
  if (!h5::has_attr(f, "kind") || h5::read_attr_string(f, "kind") != kRegressionKind)
    throw Error(path + ": not a contact regression (no kind attribute '" + kRegressionKind + "')");
  const int64_t layers = h5::read_attr_int(f, "layers"), heads = h5::read_attr_int(f, "heads");
  out.regression.weight = h5::read_array<double>(f, "weight");
  out.regression.bias = h5::read_attr_double(f, "bias");
  if (layers != m.config.model.layers || heads != m.config.model.heads || static_cast<int64_t>(out.regression.weight.size()) != C)
    throw Error(path + ": fitted on " + std::to_string(layers) + " layers x " + std::to_string(heads) + " heads, but " +
                checkpoint + " has " + std::to_string(m.config.model.layers) + " x " + std::to_string(m.config.model.heads));
  out.best_channel = h5::read_attr_int(f, "best_channel");
  out.best_fit_precision = h5::read_attr_double(f, "best_head_fit_top_L_long");
  if (out.best_channel < -1 || out.best_channel >= C) throw Error(path + ": best_channel out of range");
  out.source = fs::absolute(path).string();
  for (double w : out.regression.weight)
    if (!std::isfinite(w)) throw Error(path + ": the regression's weights hold NaN or infinite values");
  if (!std::isfinite(out.regression.bias)) throw Error(path + ": the regression's bias is not finite");
  if (h5::has_attr(f, "files")) out.fit_files = h5::read_attr_strings(f, "files");
  if (h5::has_attr(f, "cutoff_angstrom")) out.cutoff = h5::read_attr_double(f, "cutoff_angstrom");
  if (h5::has_attr(f, "checkpoint") && !same_file(h5::read_attr_string(f, "checkpoint"), checkpoint))
    std::fprintf(stderr, "note: %s was fitted on %s, not on %s\n", path.c_str(),
                 h5::read_attr_string(f, "checkpoint").c_str(), checkpoint.c_str());
  return out;
}

// ------------------------------------------------------------------------------------------- output helpers

// Scores of one channel of the features at the scored pairs.
std::vector<double> channel_scores(const std::vector<double>& X, int64_t channels, int64_t c) {
  std::vector<double> s(X.size() / static_cast<size_t>(channels));
  for (size_t p = 0; p < s.size(); ++p) s[p] = X[p * channels + c];
  return s;
}

}  // namespace

std::vector<StructureEntry> read_structure_list(const std::string& list) {
  LineReader reader(list);
  const fs::path base = fs::path(list).parent_path();
  std::vector<StructureEntry> out;
  std::string_view line;
  while (reader.next(line)) {
    const std::string text(line.substr(0, line.find('#')));
    std::istringstream words(text);
    StructureEntry e;
    std::string extra;
    if (!(words >> e.path)) continue;
    words >> e.chain;
    if (words >> extra)
      throw Error(where(list, reader.line_number()) + ": expected 'path [chain]', found a third field '" + extra + "'");
    if (fs::path(e.path).is_relative()) e.path = (base / e.path).string();
    const std::string here = where(list, reader.line_number());
    if (!fs::exists(e.path)) throw Error(here + ": " + e.path + ": no such file");
    if (fs::is_directory(e.path)) throw Error(here + ": " + e.path + ": is a folder, expected a PDB or mmCIF file");
    for (const StructureEntry& seen : out)
      if (seen.chain == e.chain && same_file(seen.path, e.path))
        throw Error(here + ": " + e.path + (e.chain.empty() ? "" : " chain " + e.chain) + " is listed twice (also line " +
                    std::to_string(seen.line) + ")");
    e.line = reader.line_number();
    out.push_back(e);
  }
  if (out.empty()) throw Error(list + ": no structures listed (expected lines 'path [chain]')");
  return out;
}

int run_contacts_fit(const ContactsJob& job) {
  const auto t0 = std::chrono::steady_clock::now();
  refuse_overwriting_inputs("--out", {job.out}, {{"--checkpoint", job.checkpoint}, {"--structures", job.structures}});
  if (fs::exists(job.out) && !job.force) throw Error(job.out + ": already exists; pass --force to replace it");
  LoadedModel m = load_model(job);
  const std::vector<StructureProtein> proteins = load_structures(job.structures, m.window, job.cutoff);
  const int64_t C = m.channels();
  std::vector<double> X;
  std::vector<uint8_t> y;
  std::vector<std::vector<double>> per_protein;  // each protein's [pairs, C] features
  std::vector<std::vector<uint8_t>> per_labels;
  for (const StructureProtein& p : proteins) {
    per_protein.push_back(pair_features(attention_features(m, p.name, p.sequence), p.pairs));
    per_labels.emplace_back();
    for (size_t k = 0; k < p.pairs.size(); ++k)
      per_labels.back().push_back(p.truth.contact[static_cast<size_t>(p.pairs.i[k]) * p.truth.n + p.pairs.j[k]]);
    X.insert(X.end(), per_protein.back().begin(), per_protein.back().end());
    y.insert(y.end(), per_labels.back().begin(), per_labels.back().end());
  }
  RegressionSettings settings = job.settings;
  CvResult cv;
  if (job.c_auto) {
    cv = cross_validate_c(per_protein, per_labels, C, settings.tolerance);
    settings.c = cv.c;
    std::printf("C by %lld-fold cross-validation over the proteins (mean held-out log-likelihood per pair):",
                static_cast<long long>(cv.folds));
    for (size_t i = 0; i < cv.grid.size(); ++i) std::printf(" %g: %.5f", cv.grid[i], cv.log_likelihood[i]);
    std::printf("\n");
  }
  const ContactRegression r = fit_contact_regression(X, y, C, settings);
  // The single head whose features alone rank long-range contacts best on these proteins.
  int64_t best = -1;  // none when no fit protein has a long-range pair
  double best_precision = std::nan("");
  for (int64_t c = 0; c < C; ++c) {
    std::vector<double> top_l;
    for (size_t i = 0; i < proteins.size(); ++i)
      top_l.push_back(score_ranking(proteins[i].truth, proteins[i].pairs, channel_scores(per_protein[i], C, c))
                          [static_cast<int>(ContactRange::kLong)].top[0]);
    const double mean = bootstrap_interval(top_l, 0, 1).mean;
    if (!std::isnan(mean) && (best < 0 || mean > best_precision)) best_precision = mean, best = c;
  }
  const auto contacts = std::accumulate(y.begin(), y.end(), int64_t{0});
  write_regression_file(job, m, r, settings, cv, proteins, best, best_precision, static_cast<int64_t>(y.size()), contacts);
  const auto nonzero = std::count_if(r.weight.begin(), r.weight.end(), [](double w) { return w != 0; });
  std::printf("fitted on %zu proteins: %zu pairs (separation >= %lld), %lld contacts (C-beta < %.1f A); "
              "C = %g: %lld of %lld heads with a non-zero weight\n",
              proteins.size(), y.size(), static_cast<long long>(kMinSeparation), static_cast<long long>(contacts),
              job.cutoff, settings.c, static_cast<long long>(nonzero), static_cast<long long>(C));
  if (best >= 0)
    std::printf("best single head on these proteins: layer %lld head %lld, long-range top-L precision %s\n",
                static_cast<long long>(best / m.config.model.heads), static_cast<long long>(best % m.config.model.heads),
                figure3(best_precision).c_str());
  else
    std::printf("no best single head: no fit protein has a long-range pair\n");
  std::printf("wrote %s (%.1f s)\n", job.out.c_str(), seconds_since(t0));
  return 0;
}

int run_contacts_predict(const ContactsJob& job) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path png_dir = fs::path(job.out).parent_path() / (fs::path(job.out).stem().string() + "_png");
  std::vector<InputFile> inputs{{"--checkpoint", job.checkpoint}};
  if (job.regression != kFromCheckpoint) inputs.push_back({"--regression", job.regression});
  for (const auto& in : job.inputs) inputs.push_back({"--input", in});
  refuse_overwriting_inputs("--out", {job.out, png_dir.string()}, inputs);
  LoadedModel m = load_model(job);
  const RegressionFile r = read_regression(job.regression, m, job.checkpoint);
  struct Named { std::string name, residues, where; };
  std::vector<Named> proteins;
  std::map<std::string, std::string> keys;  // HDF5 group name -> the record that took it
  int64_t cut = 0;
  for (const auto& path : job.inputs) {
    SequenceReader reader(path, job.reader);
    SequenceRecord rec;
    while (reader.next(rec)) {
      const std::string here = path + " record " + std::to_string(reader.counts().records) + " (" + rec.accession + ")";
      const auto [it, fresh] = keys.emplace(safe_name(rec.accession), here);
      if (!fresh)
        throw Error(here + ": its name gives the HDF5 group '" + it->first + "' that " + it->second +
                    " already has; names must be unique");
      cut += static_cast<int64_t>(rec.residues.size()) > m.window ? 1 : 0;
      proteins.push_back({rec.accession, rec.residues.substr(0, static_cast<size_t>(m.window)), here});
    }
    warn_about(path, reader.counts(), job.reader.gaps);
  }
  if (proteins.empty()) throw Error("contacts predict: no proteins in the input");
  if (cut > 0)
    std::fprintf(stderr, "note: %lld proteins are longer than the model's window of %lld residues; their first %lld are "
                 "used\n", static_cast<long long>(cut), static_cast<long long>(m.window), static_cast<long long>(m.window));
  AtomicFile out(job.out);
  std::vector<std::pair<std::string, at::Tensor>> pictures;  // drawn once the maps are committed
  {
    h5::Handle f = h5::create_file(out.temporary());
    h5::write_attr(f, "checkpoint", fs::absolute(job.checkpoint).string());
    h5::write_attr(f, "regression", r.source);
    h5::write_attr(f, "model", m.config.model.describe());
    h5::write_attr(f, "features", kFeatures);
    h5::Handle group = h5::create_group(f, "proteins");
    for (const Named& p : proteins) {
      const at::Tensor probs = predict_contact_map(attention_features(m, p.name, p.residues), r.regression).contiguous();
      const auto n = static_cast<hsize_t>(p.residues.size());
      const std::string key = safe_name(p.name);
      h5::Handle pg = h5::create_group(group, key);
      h5::write_attr(pg, "accession", p.name);
      h5::write_attr(pg, "sequence", p.residues);
      h5::write_array<float>(pg, "contacts", {n, n}, probs.data_ptr<float>());
      if (static_cast<int64_t>(pictures.size()) < job.png) pictures.emplace_back(p.name, probs);
    }
    h5::flush_file(f);
  }
  out.commit();
  const auto drawn = static_cast<int64_t>(pictures.size());
  for (const auto& [name, probs] : pictures) {
    fs::create_directories(png_dir);
    const auto n = static_cast<int>(probs.size(0));
    std::vector<float> v(probs.data_ptr<float>(), probs.data_ptr<float>() + probs.numel());
    write_png((png_dir / (safe_name(name) + ".png")).string(), heatmap(v, n, n, name + ": contact probability"));
  }
  std::printf("wrote %s: contact maps of %zu proteins (regression: %s)%s (%.1f s)\n", job.out.c_str(), proteins.size(),
              r.source.c_str(), drawn ? (", " + std::to_string(drawn) + " PNGs in " + png_dir.string()).c_str() : "",
              seconds_since(t0));
  return 0;
}

namespace {

// The predicted map beside the true contacts (unknown residues grey-free: drawn as 0).
void draw_protein(const StructureProtein& p, const at::Tensor& predicted, const fs::path& dir) {
  fs::create_directories(dir);
  const auto n = static_cast<int>(p.truth.n);
  const at::Tensor m = predicted.contiguous();
  const std::vector<float> pred(m.data_ptr<float>(), m.data_ptr<float>() + m.numel());
  const std::vector<float> truth(p.truth.contact.begin(), p.truth.contact.end());
  write_png((dir / (safe_name(p.name) + ".png")).string(),
            side_by_side({heatmap(pred, n, n, p.name + ": predicted contact probability"),
                          heatmap(truth, n, n, p.name + ": contacts (C-beta < 8 A)")}));
}

// The per-protein scores of one predictor, for every range.
struct Scored {
  std::vector<ProteinScore> fitted, random, separation, best_head;
};

// Means with intervals and the line printed for one range.
nlohmann::json range_summary(const Scored& s, ContactRange r, uint64_t seed, bool has_best, std::string& line) {
  const int ri = static_cast<int>(r);
  const auto column = [&](const std::vector<ProteinScore>& v, size_t t) {
    std::vector<double> x;
    for (const auto& p : v) x.push_back(p[ri].top[t]);
    return bootstrap_interval(x, seed);
  };
  nlohmann::json j;
  const char* keys[] = {"top_L", "top_L2", "top_L5"};
  const char* shown[] = {"top-L", "top-L/2", "top-L/5"};
  std::ostringstream o;
  char head[16];
  std::snprintf(head, sizeof head, "%-7s", contact_range_name(r));
  o << head;
  for (size_t t = 0; t < 3; ++t) {
    const Interval iv = column(s.fitted, t);
    j[keys[t]] = iv.mean;
    j[std::string(keys[t]) + "_interval"] = {iv.low, iv.high};
    o << "  " << shown[t] << " " << figure3(iv.mean) << " [" << figure3(iv.low) << ", " << figure3(iv.high) << "]";
  }
  j["random"] = column(s.random, 0).mean;
  j["separation"] = column(s.separation, 0).mean;
  j["separation_top_L5"] = column(s.separation, 2).mean;
  o << "  | random " << figure3(j["random"].get<double>()) << "  separation " << figure3(j["separation"].get<double>());
  if (has_best) {
    j["best_head"] = column(s.best_head, 0).mean;
    j["best_head_top_L5"] = column(s.best_head, 2).mean;
    o << "  best head " << figure3(j["best_head"].get<double>());
  }
  int64_t contacts = 0, pairs = 0;
  for (const auto& p : s.fitted) contacts += p[ri].contacts, pairs += p[ri].pairs;
  j["contacts"] = contacts;
  j["pairs"] = pairs;
  o << "  (" << contacts << " contacts in " << pairs << " pairs)";
  line = o.str();
  return j;
}

}  // namespace

int run_contacts_eval(const ContactsJob& job) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path out_dir(job.out);
  if (!job.out.empty()) {
    std::vector<InputFile> inputs{{"--checkpoint", job.checkpoint}, {"--structures", job.structures}};
    if (job.regression != kFromCheckpoint) inputs.push_back({"--regression", job.regression});
    refuse_overwriting_inputs("--out", {job.out, (out_dir / "summary.json").string(), (out_dir / "per_protein.csv").string(),
                                        (out_dir / "png").string()},
                              inputs);
    if (fs::exists(out_dir) && !fs::is_directory(out_dir))
      throw Error("--out " + job.out + ": exists and is not a folder (eval writes summary.json, per_protein.csv and png/ there)");
  }
  LoadedModel m = load_model(job);
  const RegressionFile r = read_regression(job.regression, m, job.checkpoint);
  const std::vector<StructureProtein> proteins = load_structures(job.structures, m.window, job.cutoff);
  for (const StructureProtein& p : proteins)
    for (const std::string& fitted : r.fit_files)
      if (same_file(p.file, fitted))
        std::fprintf(stderr, "warning: %s was one of the regression's fit chains: its scores are not held out\n",
                     p.file.c_str());
  if (r.cutoff > 0 && r.cutoff != job.cutoff)
    std::fprintf(stderr, "note: the regression was fitted with contacts below %.2f A, this evaluation counts below %.2f A\n",
                 r.cutoff, job.cutoff);
  const int64_t C = m.channels();
  const bool has_best = r.best_channel >= 0;
  Scored s;
  std::vector<at::Tensor> drawn;  // predicted maps of the first --png proteins
  for (const StructureProtein& p : proteins) {
    const at::Tensor features = attention_features(m, p.name, p.sequence);
    const std::vector<double> X = pair_features(features, p.pairs);
    s.fitted.push_back(score_ranking(p.truth, p.pairs, predict_pairs(X, r.regression)));
    s.random.push_back(score_random(p.truth, p.pairs));
    s.separation.push_back(score_separation(p.truth, p.pairs));
    if (has_best) s.best_head.push_back(score_ranking(p.truth, p.pairs, channel_scores(X, C, r.best_channel)));
    if (!job.out.empty() && static_cast<int64_t>(drawn.size()) < job.png)
      drawn.push_back(predict_contact_map(features, r.regression));
  }
  nlohmann::json summary;
  summary["proteins"] = proteins.size();
  summary["checkpoint"] = fs::absolute(job.checkpoint).string();
  summary["regression"] = r.source;
  summary["cutoff_angstrom"] = job.cutoff;
  summary["interval"] = "95% percentile bootstrap over proteins, " + std::to_string(kBootstrapResamples) + " resamples";
  if (has_best)
    summary["best_head"] = {{"layer", r.best_channel / m.config.model.heads}, {"head", r.best_channel % m.config.model.heads},
                            {"chosen_on", "the regression's fit proteins (long-range top-L)"}};
  std::printf("%s on %zu proteins (regression: %s); mean precision [95%% bootstrap interval]\n", job.checkpoint.c_str(),
              proteins.size(), r.source.c_str());
  for (ContactRange range : kAllContactRanges) {
    std::string line;
    summary[contact_range_name(range)] = range_summary(s, range, job.seed, has_best, line);
    std::printf("%s\n", line.c_str());
  }
  if (has_best)
    std::printf("best head: layer %lld head %lld (chosen on the fit proteins, no regression); random: the contact "
                "density; separation: pairs ranked by sequence separation alone\n",
                static_cast<long long>(r.best_channel / m.config.model.heads),
                static_cast<long long>(r.best_channel % m.config.model.heads));
  if (!job.out.empty()) {
    fs::create_directories(out_dir);
    std::string csv = csv_line({"protein", "file", "chain", "length", "observed", "range", "top_L", "top_L2", "top_L5",
                                "random", "separation_top_L", "best_head_top_L", "contacts", "pairs"}) + "\n";
    for (size_t i = 0; i < proteins.size(); ++i)
      for (ContactRange range : kAllContactRanges) {
        const int ri = static_cast<int>(range);
        const RangeScore& f = s.fitted[i][ri];
        csv += csv_line({proteins[i].name, proteins[i].file, proteins[i].chain, std::to_string(proteins[i].sequence.size()),
                         std::to_string(proteins[i].observed), contact_range_name(range), figure3(f.top[0]), figure3(f.top[1]),
                         figure3(f.top[2]), figure3(s.random[i][ri].top[0]), figure3(s.separation[i][ri].top[0]),
                         has_best ? figure3(s.best_head[i][ri].top[0]) : "n/a", std::to_string(f.contacts),
                         std::to_string(f.pairs)}) + "\n";
      }
    write_text_file((out_dir / "per_protein.csv").string(), csv);
    for (size_t i = 0; i < drawn.size(); ++i) draw_protein(proteins[i], drawn[i], out_dir / "png");
    write_text_file((out_dir / "summary.json").string(), summary.dump(2) + "\n");
    std::printf("wrote %s and %s (%.1f s)\n", (out_dir / "summary.json").string().c_str(),
                (out_dir / "per_protein.csv").string().c_str(), seconds_since(t0));
  }
  return 0;
}

}  // namespace performer
