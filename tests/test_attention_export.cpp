// PNG output, amino-acid attention aggregation, and `performer attention` end to end.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "analysis/aa_attention.h"
#include "train/checkpoint.h"
#include "io/hdf5.h"
#include "io/png.h"
#include "test_checkpoint.h"
#include "test_util.h"
#include "train/config.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

TEST(Png, HeatmapDecodesWithItsSizeAndHasText) {
  TempDir dir;
  std::vector<float> v(30 * 40);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 17);
  Image img = heatmap(v, 30, 40, "P12345 layer 0 head 1");
  const std::string path = dir.file("h.png");
  write_png(path, img);
  auto [w, h] = png_size(path);
  EXPECT_EQ(w, img.width);
  EXPECT_EQ(h, img.height);
  // The title is drawn in black in the top band.
  int dark = 0;
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < img.width; ++x) dark += img.rgb[static_cast<size_t>((y * img.width + x) * 3)] == 0;
  EXPECT_GT(dark, 50);
  write_file(dir.file("bad.png"), "not a png");
  EXPECT_THROW(png_size(dir.file("bad.png")), std::exception);
}

TEST(PairwiseAttention, UniformGivesOnesAndSelfAttentionTheHandComputedRatios) {
  // Residues L L A A (ids 4, 4, 5, 5).
  const std::vector<Token> res = {4, 4, 5, 5};
  PairwiseAttention uniform(1), self(1);
  uniform.add(torch::full({1, 4, 4}, 0.25), res);
  self.add(torch::eye(4).unsqueeze(0), res);
  auto u = uniform.matrix(0), s = self.matrix(0);
  EXPECT_NEAR(u[0 * 20 + 0], 1.0, 1e-12);  // L-L
  EXPECT_NEAR(u[0 * 20 + 1], 1.0, 1e-12);  // L-A
  // Self attention: num(L,L) = 2, den(L,L) = 2*2/4 = 1 -> 2; no attention between L and A -> 0.
  EXPECT_NEAR(s[0 * 20 + 0], 2.0, 1e-12);
  EXPECT_NEAR(s[1 * 20 + 1], 2.0, 1e-12);
  EXPECT_NEAR(s[0 * 20 + 1], 0.0, 1e-12);
  EXPECT_TRUE(std::isnan(s[2 * 20 + 2]));  // G never occurs
}

TEST(AttentionCli, ExportsMapsAndBlosumComparison) {
  TempDir dir;
  const std::string root = fs::path(PERFORMER_TEST_DATA).parent_path().parent_path().string();
  RunConfig c = load_config(root + "/configs/tiny.yaml", {"output.dir=" + dir.path()});
  const std::string ckpt = save_untrained_checkpoint(c, dir.file("ckpt.h5"));
  const std::string out = dir.file("att");
  const std::string cmd = std::string(PERFORMER_BINARY) + " attention --checkpoint " + ckpt + " --input " +
                          data_path("real_excerpt.fasta") + " --out " + out + " --max-sequences 12 --export 1 --blosum " +
                          root + "/data/BLOSUM62 --device cpu > " + dir.file("log.txt") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << std::ifstream(dir.file("log.txt")).rdbuf();
  // One exported protein: [H, n, n] per layer, rows summing to 1, PNG heatmaps of the right size.
  h5::Handle f = h5::open_file(out + "/attention.h5");
  auto recs = read_all(data_path("real_excerpt.fasta"));
  const std::string acc = recs[0].accession;
  const auto n = static_cast<hsize_t>(std::min<size_t>(recs[0].residues.size(), static_cast<size_t>(c.model.max_len - 2)));
  for (int64_t l = 0; l < c.model.layers; ++l) {
    const std::string name = "proteins/" + acc + "/layer_" + std::to_string(l);
    auto dims = h5::dataset_dims(f, name);
    ASSERT_EQ(dims, (std::vector<hsize_t>{static_cast<hsize_t>(c.model.heads), n, n}));
    auto v = h5::read_array<float>(f, name);
    at::Tensor A = torch::from_blob(v.data(), {c.model.heads, static_cast<int64_t>(n), static_cast<int64_t>(n)}, torch::kFloat);
    EXPECT_LT((A.sum(-1) - 1).abs().max().item<double>(), 1e-4);
    for (int64_t h = 0; h < c.model.heads; ++h) {
      const std::string png = out + "/png/" + acc + "_layer" + std::to_string(l) + "_head" + std::to_string(h) + ".png";
      auto [w, hh] = png_size(png);
      EXPECT_GE(w, static_cast<int>(n));
      EXPECT_GE(hh, static_cast<int>(n));
    }
  }
  for (const char* variant : {"trained", "init", "positional_null", "shuffled"}) {
    EXPECT_EQ(h5::dataset_dims(f, std::string("pairwise/") + variant + "/layer_0"),
              (std::vector<hsize_t>{static_cast<hsize_t>(c.model.heads), 20, 20}));
    EXPECT_EQ(h5::dataset_dims(f, std::string("target_shares/") + variant + "/shares"),
              (std::vector<hsize_t>{static_cast<hsize_t>(c.model.layers * c.model.heads), 20}));
    EXPECT_EQ(h5::dataset_dims(f, std::string("target_shares/") + variant + "/similarity"), (std::vector<hsize_t>{20, 20}));
  }
  // correlations.csv: per variant, the target-share row and one pairwise row per layer and head; the
  // trained heads' pairwise correlations are finite.
  std::ifstream csv(out + "/correlations.csv");
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "measure,variant,layer,head,pearson,spearman,pairs");
  int rows = 0;
  while (std::getline(csv, line)) {
    ++rows;
    if (line.rfind("pairwise_ratio,trained,", 0) == 0) {
      EXPECT_EQ(line.find("nan"), std::string::npos) << line;
    }
  }
  EXPECT_EQ(rows, 4 * (1 + c.model.layers * c.model.heads));
  // similarity.csv: three statistics, the four variants and the verdict.
  std::ifstream sim(out + "/similarity.csv");
  std::getline(sim, line);
  EXPECT_EQ(line, "measure,statistic,trained,init,positional_null,shuffled,trained_above_both_nulls");
  int sim_rows = 0;
  while (std::getline(sim, line)) {
    ++sim_rows;
    const std::string v = line.substr(line.rfind(',') + 1);
    EXPECT_TRUE(v == "yes" || v == "no" || v == "n/a") << line;
  }
  EXPECT_EQ(sim_rows, 3);
  EXPECT_TRUE(fs::exists(out + "/target_similarity.csv"));
  EXPECT_GT(png_size(out + "/blosum_vs_attention.png").first, 400);
  EXPECT_TRUE(fs::exists(out + "/aa_attention.csv"));
  // --heads selects the exported maps; a bad index is a one-line error.
  const std::string out2 = dir.file("att2");
  const std::string base = std::string(PERFORMER_BINARY) + " attention --checkpoint " + ckpt + " --input " +
                           data_path("real_excerpt.fasta") + " --max-sequences 3 --export 1 --layers 1 --blosum " + root +
                           "/data/BLOSUM62 --device cpu --out " + out2;
  ASSERT_EQ(std::system((base + " --heads 1 > /dev/null 2>&1").c_str()), 0);
  h5::Handle f2 = h5::open_file(out2 + "/attention.h5");
  EXPECT_EQ(h5::dataset_dims(f2, "proteins/" + acc + "/layer_1"), (std::vector<hsize_t>{1, n, n}));
  EXPECT_TRUE(fs::exists(out2 + "/png/" + acc + "_layer1_head1.png"));
  EXPECT_FALSE(fs::exists(out2 + "/png/" + acc + "_layer1_head0.png"));
  EXPECT_NE(std::system((base + " --heads 9 > /dev/null 2>&1").c_str()), 0);
}
