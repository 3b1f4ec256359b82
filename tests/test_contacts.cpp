// Contacts from attention: the features against a naive formula, the precision metrics on hand-made cases,
// planted heads on real structures, the regression against scikit-learn, and the three commands end to end.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "analysis/contact_metrics.h"
#include "analysis/contact_regression.h"
#include "analysis/contacts.h"
#include "experiments/contacts_job.h"
#include "io/hdf5.h"
#include "io/structure.h"
#include "model/encoder.h"
#include "test_checkpoint.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "util/error.h"
#include "util/hash.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

namespace {

// Real chains (C-alpha and C-beta atoms only) excerpted from mdanalysistests' dssp set.
const std::vector<std::string> kChains = {"3a4rA", "2cviA", "2xcjA", "1lpbA"};

std::string chain_file(const std::string& name) { return data_path("contacts/" + name + ".pdb.gz"); }

ContactTruth truth_of(const std::string& name) {
  const StructureChain c = read_structure(chain_file(name));
  std::vector<std::array<double, 3>> points;
  std::vector<uint8_t> known;
  for (const auto& r : c.residues) {
    points.push_back(r.point);
    known.push_back(r.has_point ? 1 : 0);
  }
  return contacts_from_points(points, known, kContactCutoff);
}

// Attention-like maps [C, n, n] (rows sum to 1) from a signal [C, n, n] plus uniform noise.
at::Tensor maps_from(const at::Tensor& signal, double noise, uint64_t seed) {
  torch::manual_seed(seed);
  at::Tensor a = signal + noise * torch::rand_like(signal);
  return a / a.sum(-1, true);
}

at::Tensor contact_tensor(const ContactTruth& t) {
  std::vector<double> v(t.contact.begin(), t.contact.end());
  return torch::tensor(v, torch::kDouble).view({t.n, t.n});
}

// Channels that depend on |i - j| alone.
at::Tensor positional_signal(int64_t n) {
  at::Tensor d = (torch::arange(n).view({-1, 1}) - torch::arange(n).view({1, -1})).abs().to(torch::kDouble);
  return torch::stack({torch::exp(-d / 2.0), torch::exp(-d / 8.0), 1.0 / (1.0 + d), torch::exp(-(d - 4.0).pow(2) / 4.0)});
}

struct Training {
  std::vector<double> X;
  std::vector<uint8_t> y;
};
void add_protein(Training& t, const ContactTruth& truth, const at::Tensor& maps) {
  const ScoredPairs pairs = scored_pairs(truth);
  const std::vector<double> f = pair_features(contact_features(maps), pairs);
  t.X.insert(t.X.end(), f.begin(), f.end());
  for (size_t p = 0; p < pairs.size(); ++p) t.y.push_back(truth.contact[pairs.i[p] * truth.n + pairs.j[p]]);
}

double long_range(const ProteinScore& s, size_t top) { return s[static_cast<int>(ContactRange::kLong)].top[top]; }

}  // namespace

TEST(Contacts, SymmetrizeAndApcMatchTheNaiveFormula) {
  torch::manual_seed(3);
  const at::Tensor x = torch::rand({3, 7, 7}, torch::kDouble);
  const at::Tensor got = apc(symmetrize(x));
  const auto a = x.accessor<double, 3>();
  const auto g = got.accessor<double, 3>();
  for (int c = 0; c < 3; ++c) {
    double s[7][7], row[7] = {}, col[7] = {}, total = 0;
    for (int i = 0; i < 7; ++i)
      for (int j = 0; j < 7; ++j) s[i][j] = a[c][i][j] + a[c][j][i];
    for (int i = 0; i < 7; ++i)
      for (int j = 0; j < 7; ++j) row[i] += s[i][j], col[j] += s[i][j], total += s[i][j];
    for (int i = 0; i < 7; ++i)
      for (int j = 0; j < 7; ++j) EXPECT_NEAR(g[c][i][j], s[i][j] - row[i] * col[j] / total, 1e-12);
  }
  // The float32 features of a float64 input agree to float precision, and stay symmetric.
  const at::Tensor f = contact_features(x);
  EXPECT_EQ(f.scalar_type(), torch::kFloat);
  EXPECT_LT((f.to(torch::kDouble) - got).abs().max().item<double>(), 1e-6);
  EXPECT_LT((f - f.transpose(1, 2)).abs().max().item<float>(), 1e-6f);
}

TEST(Contacts, ContactsScoredPairsAndRanges) {
  // Four points on a line: 0 and 7.9 A apart are a contact, 8.1 A are not; position 2 has no coordinates.
  std::vector<std::array<double, 3>> p(10, std::array<double, 3>{0, 0, 0});
  std::vector<uint8_t> known(10, 1);
  for (int i = 0; i < 10; ++i) p[i] = {i * 10.0, 0, 0};
  p[7] = {7.9, 0, 0};
  p[8] = {8.1, 0, 0};
  known[2] = 0;
  const ContactTruth t = contacts_from_points(p, known, 8.0);
  EXPECT_EQ(t.contact[0 * 10 + 7], 1);
  EXPECT_EQ(t.contact[7 * 10 + 0], 1);
  EXPECT_EQ(t.contact[0 * 10 + 8], 0);
  const ScoredPairs pairs = scored_pairs(t);
  // i < j, j - i >= 6, position 2 left out: (0,6) (0,7) (0,8) (0,9) (1,7) (1,8) (1,9) (3,9).
  ASSERT_EQ(pairs.size(), 8u);
  EXPECT_EQ(pairs.i.back(), 3);
  EXPECT_EQ(pairs.j.back(), 9);
  EXPECT_TRUE(in_contact_range(ContactRange::kShort, 6));
  EXPECT_TRUE(in_contact_range(ContactRange::kShort, 11));
  EXPECT_TRUE(in_contact_range(ContactRange::kMedium, 12));
  EXPECT_TRUE(in_contact_range(ContactRange::kMedium, 23));
  EXPECT_TRUE(in_contact_range(ContactRange::kLong, 24));
  EXPECT_FALSE(in_contact_range(ContactRange::kShort, 5));
}

TEST(Contacts, TopKPrecisionSharesTiesAndBaselinesAreExact) {
  // Scores 3, 2, 2, 1 with labels 1, 0, 1, 0: the top 2 hold the 3 and half of the tied pair: (1 + 0.5) / 2.
  EXPECT_DOUBLE_EQ(top_k_precision({3, 2, 2, 1}, {1, 0, 1, 0}, 2), 0.75);
  EXPECT_DOUBLE_EQ(top_k_precision({3, 2, 2, 1}, {1, 0, 1, 0}, 1), 1.0);
  EXPECT_DOUBLE_EQ(top_k_precision({3, 2, 2, 1}, {1, 0, 1, 0}, 10), 0.5);  // k beyond the items: all of them
  EXPECT_TRUE(std::isnan(top_k_precision({}, {}, 3)));
  // NaN scores rank last as one tied group (a diverged model must not hang or flatter the scores).
  const double nan = std::nan("");
  EXPECT_DOUBLE_EQ(top_k_precision({0.5, nan, 0.2, 0.9}, {0, 1, 1, 0}, 3), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(top_k_precision({nan, nan}, {1, 0}, 1), 0.5);
  // On a real chain: the random baseline is the density of each range, the separation baseline a ranking.
  const ContactTruth t = truth_of("3a4rA");
  const ScoredPairs pairs = scored_pairs(t);
  const ProteinScore random = score_random(t, pairs), sep = score_separation(t, pairs);
  for (ContactRange r : kAllContactRanges) {
    const RangeScore& s = random[static_cast<int>(r)];
    ASSERT_GT(s.pairs, 0);
    EXPECT_NEAR(s.top[0], static_cast<double>(s.contacts) / static_cast<double>(s.pairs), 1e-12);
    EXPECT_NEAR(s.top[2], s.top[0], 1e-12);
  }
  // Short-range contacts are denser at separation 6 than at 11: ranking by separation beats the density.
  EXPECT_GT(sep[0].top[0], random[0].top[0]);
}

TEST(Contacts, BootstrapIntervalHoldsTheMeanAndDropsNaN) {
  const Interval same = bootstrap_interval({0.3, 0.3, std::nan(""), 0.3});
  EXPECT_EQ(same.count, 3);
  EXPECT_DOUBLE_EQ(same.mean, 0.3);
  EXPECT_DOUBLE_EQ(same.low, 0.3);
  EXPECT_DOUBLE_EQ(same.high, 0.3);
  std::vector<double> v;
  for (int i = 0; i < 40; ++i) v.push_back(i % 2 ? 1.0 : 0.0);
  const Interval iv = bootstrap_interval(v, 7);
  EXPECT_DOUBLE_EQ(iv.mean, 0.5);
  EXPECT_LT(iv.low, 0.5);
  EXPECT_GT(iv.high, 0.5);
  // The standard error of a mean of 40 fair coins is 0.079: a 95% interval is about +-0.155.
  EXPECT_NEAR(iv.high - iv.low, 2 * 1.96 * 0.079, 0.06);
  EXPECT_EQ(bootstrap_interval(v, 7).low, iv.low);  // the seed makes it repeatable
}

TEST(Contacts, PlantedContactHeadIsFoundAndPositionalHeadsAreNot) {
  // Fit on three real chains, score the fourth. Planted: one head attends along the true contacts (plus
  // noise of the same size), three heads are noise. Positional: four heads that depend on |i - j| alone.
  Training planted, positional;
  at::Tensor planted_test, positional_test;
  for (size_t k = 0; k < kChains.size(); ++k) {
    const ContactTruth t = truth_of(kChains[k]);
    const at::Tensor contact = contact_tensor(t);
    at::Tensor signal = torch::stack({contact, torch::zeros_like(contact), torch::zeros_like(contact), torch::zeros_like(contact)});
    const at::Tensor pm = maps_from(signal, 1.0, 10 + k);
    const at::Tensor qm = maps_from(positional_signal(t.n), 1e-3, 20 + k);
    if (k + 1 < kChains.size()) {
      add_protein(planted, t, pm);
      add_protein(positional, t, qm);
    } else {
      planted_test = pm;
      positional_test = qm;
    }
  }
  const ContactRegression rp = fit_contact_regression(planted.X, planted.y, 4, {});
  // C by cross-validation over the three fit proteins: a grid value that predicts the held-out pairs at
  // least as well as the sparsest setting of the grid.
  {
    std::vector<std::vector<double>> X;
    std::vector<std::vector<uint8_t>> y;
    for (size_t k = 0; k + 1 < kChains.size(); ++k) {
      const ContactTruth t = truth_of(kChains[k]);
      Training one;
      add_protein(one, t, maps_from(torch::stack({contact_tensor(t), torch::zeros_like(contact_tensor(t))}), 1.0, 40 + k));
      X.push_back(one.X);
      y.push_back(one.y);
    }
    const CvResult cv = cross_validate_c(X, y, 2, 1e-4);
    EXPECT_EQ(cv.folds, 3);
    ASSERT_EQ(cv.grid.size(), kCGrid.size());
    const auto chosen = std::find(cv.grid.begin(), cv.grid.end(), cv.c) - cv.grid.begin();
    ASSERT_LT(chosen, static_cast<long>(cv.grid.size()));
    for (double ll : cv.log_likelihood) EXPECT_LE(ll, cv.log_likelihood[chosen]);
    EXPECT_GT(cv.log_likelihood[chosen], cv.log_likelihood[0]) << "the planted head should pay for a larger C";
    EXPECT_THROW(cross_validate_c({X[0]}, {y[0]}, 2, 1e-4), Error);
  }
  const ContactRegression rq = fit_contact_regression(positional.X, positional.y, 4, {});
  EXPECT_GT(rp.weight[0], 0);
  const ContactTruth test = truth_of(kChains.back());
  const ScoredPairs pairs = scored_pairs(test);
  const auto score = [&](const at::Tensor& maps, const ContactRegression& r) {
    return score_ranking(test, pairs, predict_pairs(pair_features(contact_features(maps), pairs), r));
  };
  const ProteinScore p = score(planted_test, rp), q = score(positional_test, rq);
  const ProteinScore sep = score_separation(test, pairs), random = score_random(test, pairs);
  std::printf("planted head: long-range top-L/5 %.3f top-L %.3f; positional heads: top-L %.3f (separation %.3f, random %.3f)\n",
              long_range(p, 2), long_range(p, 0), long_range(q, 0), long_range(sep, 0), long_range(random, 0));
  EXPECT_GE(long_range(p, 2), 0.9);
  // The best a function of |i - j| can do is the separation ranking (ties shared fairly): never better.
  for (size_t top = 0; top < 3; ++top) EXPECT_LE(long_range(q, top), long_range(sep, top) + 1e-9) << top;
  // The map of a fitted regression is what predict_pairs gives for the same pairs.
  const at::Tensor map = predict_contact_map(contact_features(planted_test), rp);
  const std::vector<double> direct = predict_pairs(pair_features(contact_features(planted_test), pairs), rp);
  for (size_t k = 0; k < pairs.size(); k += 97) EXPECT_NEAR(map[pairs.i[k]][pairs.j[k]].item<float>(), direct[k], 1e-6);
}

TEST(Contacts, RegressionRefusesOneClassAndBadShapes) {
  EXPECT_THROW(fit_contact_regression({1, 2, 3, 4}, {0, 0}, 2, {}), Error);
  EXPECT_THROW(fit_contact_regression({1, 2, 3}, {0, 1}, 2, {}), Error);
  try {
    fit_contact_regression({1, 2, 3, 4}, {1, 1}, 2, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only contacts"), std::string::npos) << e.what();
  }
}

// scikit-learn (tests/contact_reference.py) fits the same objective twice: its LIBLINEAR solver with a
// penalized intercept, and SAGA on the features plus a column of ones (no intercept), an independent solver.
TEST(Contacts, RegressionMatchesScikitLearn) {
  const char* py = std::getenv("PERFORMER_TEST_PYTHON");
  if (!py || !*py) GTEST_SKIP() << "PERFORMER_TEST_PYTHON not set (scripts/setup.sh sets it for the 2.x toolchain)";
  if (run_command(std::string(py) + " -c 'import sklearn' 2>&1").status != 0) GTEST_SKIP() << "scikit-learn missing in " << py;
  // Features of real chains: a planted head, a weaker one and three noise heads, unnormalized (values of
  // order 1) so that the L1 penalty keeps some weights and zeroes others.
  Training t;
  for (size_t k = 0; k < 3; ++k) {
    const ContactTruth truth = truth_of(kChains[k]);
    const at::Tensor c = contact_tensor(truth);
    at::Tensor signal = torch::stack({c, torch::zeros_like(c), 0.2 * c, torch::zeros_like(c), torch::zeros_like(c)});
    torch::manual_seed(30 + k);
    add_protein(t, truth, signal + torch::rand_like(signal));
  }
  const int64_t C = 5;
  RegressionSettings settings;
  settings.tolerance = 1e-8;
  const ContactRegression r = fit_contact_regression(t.X, t.y, C, settings);
  TempDir dir;
  {
    std::ofstream out(dir.file("pairs.csv"));
    out.precision(17);
    for (size_t p = 0; p < t.y.size(); ++p) {
      for (int64_t c = 0; c < C; ++c) out << t.X[p * C + c] << ",";
      out << int(t.y[p]) << "\n";
    }
  }
  const CliRun run = run_command(std::string(py) + " " + project_root() + "/tests/contact_reference.py " +
                                 dir.file("pairs.csv") + " --c " + std::to_string(settings.c) + " --out " +
                                 dir.file("sklearn.csv") + " 2>&1");
  ASSERT_EQ(run.status, 0) << run.out;
  const std::vector<double> ours = predict_pairs(t.X, r);
  for (size_t col : {0u, 1u}) {
    const std::vector<double> theirs = csv_column(dir.file("sklearn.csv"), col);
    ASSERT_EQ(theirs.size(), ours.size());
    double worst = 0;
    for (size_t p = 0; p < ours.size(); ++p) worst = std::max(worst, std::abs(ours[p] - theirs[p]));
    std::printf("%s: max |p_ours - p_sklearn| = %.2e over %zu pairs\n", col == 0 ? "liblinear" : "saga", worst, ours.size());
    EXPECT_LT(worst, 1e-4) << (col == 0 ? "liblinear" : "saga") << "\n" << run.out;
  }
  int zeros = 0;
  for (double w : r.weight) zeros += w == 0;
  EXPECT_GT(zeros, 0) << "the L1 penalty should zero some noise heads";
  EXPECT_LT(zeros, C) << "and keep the planted one";
  EXPECT_GT(r.weight[0], 0);
}

// ------------------------------------------------------------------------------------------- commands

namespace {

std::string tiny_checkpoint(const TempDir& dir, const std::vector<std::string>& sets = {}) {
  return save_untrained_checkpoint(load_config(project_root() + "/configs/tiny.yaml", sets), dir.file("ckpt.h5"));
}

std::string write_list(const TempDir& dir, const std::string& name, const std::vector<std::string>& chains) {
  std::string text = "# a structure list\n";
  for (const auto& c : chains) text += chain_file(c) + "  A\n";
  write_file(dir.file(name), text);
  return dir.file(name);
}

}  // namespace

TEST(ContactsCli, FitPredictEvalOnRealStructures) {
  TempDir dir;
  const std::string ckpt = tiny_checkpoint(dir);
  const std::string fit_list = write_list(dir, "fit.txt", {"3a4rA", "2cviA", "2xcjA"});
  const std::string eval_list = write_list(dir, "eval.txt", {"1lpbA"});
  const std::string reg = dir.file("reg.h5");
  CliRun r = run_performer("contacts fit --checkpoint " + ckpt + " --structures " + fit_list + " --out " + reg + " --device cpu");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("fitted on 3 proteins"), std::string::npos) << r.out;
  {
    h5::Handle f = h5::open_file(reg);
    EXPECT_EQ(h5::read_array<double>(f, "weight").size(), 8u);  // 2 layers x 4 heads
    EXPECT_EQ(h5::read_attr_strings(f, "proteins"), (std::vector<std::string>{"3a4rA_A", "2cviA_A", "2xcjA_A"}));
  }
  // A second fit onto the same file needs --force.
  r = run_performer("contacts fit --checkpoint " + ckpt + " --structures " + fit_list + " --out " + reg + " --device cpu");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--force"), std::string::npos) << r.out;

  // predict: one map per protein of the FASTA, symmetric probabilities, a PNG for the first.
  const std::string pred = dir.file("pred.h5");
  r = run_performer("contacts predict --checkpoint " + ckpt + " --regression " + reg + " --input " +
                    data_path("real_excerpt.fasta") + " --out " + pred + " --png 1 --device cpu");
  ASSERT_EQ(r.status, 0) << r.out;
  {
    h5::Handle f = h5::open_file(pred);
    const auto recs = read_all(data_path("real_excerpt.fasta"));
    const std::string name = "proteins/" + recs[0].accession + "/contacts";
    const auto dims = h5::dataset_dims(f, name);
    const auto n = std::min<size_t>(recs[0].residues.size(), 126);
    ASSERT_EQ(dims, (std::vector<hsize_t>{n, n}));
    const std::vector<float> m = h5::read_array<float>(f, name);
    for (size_t i = 0; i < n; i += 5)
      for (size_t j = 0; j < n; j += 7) {
        EXPECT_NEAR(m[i * n + j], m[j * n + i], 1e-6);
        EXPECT_TRUE(m[i * n + j] > 0 && m[i * n + j] < 1);
      }
  }
  EXPECT_TRUE(fs::exists(dir.file("pred_png")));

  // eval: one line per range, summary.json with the keys a user reads.
  r = run_performer("contacts eval --checkpoint " + ckpt + " --regression " + reg + " --structures " + eval_list +
                    " --out " + dir.file("eval") + " --device cpu");
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* range : {"short ", "medium ", "long "}) EXPECT_NE(r.out.find(range), std::string::npos) << r.out;
  std::ifstream in(dir.file("eval/summary.json"));
  const nlohmann::json s = nlohmann::json::parse(in);
  EXPECT_EQ(s["proteins"].get<int>(), 1);
  const ContactTruth t = truth_of("1lpbA");
  const ProteinScore random = score_random(t, scored_pairs(t));
  for (ContactRange range : kAllContactRanges) {
    const nlohmann::json& j = s[contact_range_name(range)];
    for (const char* key : {"top_L", "top_L2", "top_L5", "random", "separation"}) {
      ASSERT_TRUE(j.contains(key)) << key;
      EXPECT_GE(j[key].get<double>(), 0.0);
      EXPECT_LE(j[key].get<double>(), 1.0);
    }
    EXPECT_EQ(j["contacts"].get<int64_t>(), random[static_cast<int>(range)].contacts);
    EXPECT_EQ(j["pairs"].get<int64_t>(), random[static_cast<int>(range)].pairs);
    EXPECT_NEAR(j["random"].get<double>(), random[static_cast<int>(range)].top[0], 1e-12);
  }
  EXPECT_TRUE(fs::exists(dir.file("eval/per_protein.csv")));
  EXPECT_TRUE(fs::exists(dir.file("eval/png/1lpbA_A.png")));

  // A chain without SEQRES: residues 1-8, a break (C-alphas 11.4 A apart) where numbers 9-10 are missing,
  // 11-18, then a jump to 300 without a break (renumbering): 2 X positions are added, none for the jump.
  std::string pdb;
  const auto atom = [&](int serial, int number, double x) {
    char line[96];
    std::snprintf(line, sizeof line, "ATOM  %5d  CA  GLY A%4d    %8.3f%8.3f%8.3f  1.00  0.00           C\n", serial,
                  number, x, 0.0, 0.0);
    pdb += line;
  };
  double x = 0;
  int serial = 1;
  for (int n = 1; n <= 8; ++n, x += 3.8) atom(serial++, n, x);
  x += 7.6;
  for (int n = 11; n <= 18; ++n, x += 3.8) atom(serial++, n, x);
  for (int n = 300; n <= 307; ++n, x += 3.8) atom(serial++, n, x);
  write_file(dir.file("gap.pdb"), pdb + "END\n");
  write_file(dir.file("gap.txt"), dir.file("gap.pdb") + "\n");
  r = run_performer("contacts eval --checkpoint " + ckpt + " --regression " + reg + " --structures " + dir.file("gap.txt") +
                    " --out " + dir.file("gap") + " --device cpu");
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string csv = read_text(dir.file("gap/per_protein.csv"));
  EXPECT_NE(csv.find(",26,24,short,"), std::string::npos) << csv;  // length 26 = 24 observed + 2 missing
}

TEST(ContactsCli, BadInputsAreOneLineErrorsAndWriteNothing) {
  TempDir dir;
  const std::string ckpt = tiny_checkpoint(dir);
  // A list line with three fields names the list and the line.
  write_file(dir.file("bad.txt"), "# header\n" + chain_file("3a4rA") + " A extra\n");
  CliRun r = run_performer("contacts fit --checkpoint " + ckpt + " --structures " + dir.file("bad.txt") + " --out " +
                           dir.file("reg.h5") + " --device cpu");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find(dir.file("bad.txt") + ":2:"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("reg.h5")));
  // A missing structure file.
  write_file(dir.file("missing.txt"), dir.file("nope.pdb") + "\n");
  r = run_performer("contacts fit --checkpoint " + ckpt + " --structures " + dir.file("missing.txt") + " --out " +
                    dir.file("reg.h5") + " --device cpu");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("missing.txt:1:"), std::string::npos) << r.out;
  // The model's own contact head, on a model without one.
  write_file(dir.file("one.fasta"), ">p\nMKTAYIAKQRQISFVKSHFSRQ\n");
  r = run_performer("contacts predict --checkpoint " + ckpt + " --regression checkpoint --input " + dir.file("one.fasta") +
                    " --out " + dir.file("p.h5") + " --device cpu");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("no contact regression of its own"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("p.h5")));
  // A regression fitted on another shape of model.
  const std::string list = write_list(dir, "fit.txt", {"3a4rA", "2cviA"});
  r = run_performer("contacts fit --checkpoint " + ckpt + " --structures " + list + " --out " + dir.file("reg.h5") +
                    " --device cpu");
  ASSERT_EQ(r.status, 0) << r.out;
  TempDir other;
  const std::string ckpt3 = tiny_checkpoint(other, {"model.layers=3"});
  r = run_performer("contacts eval --checkpoint " + ckpt3 + " --regression " + dir.file("reg.h5") + " --structures " + list +
                    " --device cpu");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("fitted on 2 layers x 4 heads"), std::string::npos) << r.out;
  // Two records whose names give one HDF5 group: refused before any output, no PNG left behind.
  write_file(dir.file("dup.fasta"), ">p1\nMKTAYIAKQRQISFVKSHFSRQ\n>p2\nMKTAYIAKQRQ\n>p1\nGSHMSLFDF\n");
  r = run_performer("contacts predict --checkpoint " + ckpt + " --regression " + dir.file("reg.h5") + " --input " +
                    dir.file("dup.fasta") + " --out " + dir.file("dup.h5") + " --device cpu");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("dup.fasta record 3 (p1)"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir.file("dup.h5")));
  EXPECT_FALSE(fs::exists(dir.file("dup_png")));
  // A chain listed twice names both lines; evaluating on a fit chain warns that it is not held out.
  write_file(dir.file("twice.txt"), chain_file("3a4rA") + "\n" + chain_file("2cviA") + "\n" + chain_file("3a4rA") + "\n");
  r = run_performer("contacts eval --checkpoint " + ckpt + " --regression " + dir.file("reg.h5") + " --structures " +
                    dir.file("twice.txt") + " --device cpu");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("twice.txt:3:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("listed twice (also line 1)"), std::string::npos) << r.out;
  r = run_performer("contacts eval --checkpoint " + ckpt + " --regression " + dir.file("reg.h5") + " --structures " + list +
                    " --device cpu");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("was one of the regression's fit chains"), std::string::npos) << r.out;
  // --out over an input is refused.
  r = run_performer("contacts fit --checkpoint " + ckpt + " --structures " + list + " --out " + ckpt + " --force --device cpu");
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(h5::is_hdf5(ckpt));
}
