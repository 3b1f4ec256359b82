// CUDA end to end: training, a CUDA-trained checkpoint evaluated on CPU, and the long-sequence sweep's
// handling of a real CUDA out-of-memory. Compiled in every build (CI builds against pip's CUDA LibTorch);
// each test skips itself when no GPU is visible. Attention-level CUDA vs CPU checks (every kind,
// bidirectional and causal, forward and backward) are in test_attention.cpp, bf16 autocast in
// test_encoder.cpp.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "analysis/perplexity.h"
#include "data/corpus.h"
#include "experiments/longseq.h"
#include "test_util.h"
#include "train/config.h"
#include "train/trainer.h"

using namespace performer;
using namespace performer::testing;

namespace {

RunConfig tiny_on_cuda(const std::string& dir, std::vector<std::string> sets) {
  sets.push_back("runtime.device=cuda");
  return tiny_run_config(dir, std::move(sets));
}

double mean(const std::vector<double>& v, size_t from, size_t n) {
  double s = 0;
  for (size_t i = from; i < from + n; ++i) s += v[i];
  return s / static_cast<double>(n);
}

}  // namespace

TEST(Cuda, FiftyTrainingStepsLowerTheLoss) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  TempDir dir;
  RunConfig c = tiny_on_cuda(dir.path(), {"train.steps=50", "eval.every=0", "model.dropout=0"});
  TrainOptions o;
  o.progress_bar = false;
  TrainResult r = train(c, o);
  EXPECT_EQ(r.step, 50);
  auto loss = csv_column(dir.file("metrics.csv"), 2);
  ASSERT_EQ(loss.size(), 50u);
  const double first = mean(loss, 0, 10), last = mean(loss, 40, 10);
  std::printf("  CUDA training loss: first 10 steps %.4f, last 10 %.4f\n", first, last);
  EXPECT_LT(last, first - 0.2);
  EXPECT_GT(r.peak_bytes, 0);  // the caching allocator's peak
}

// The same checkpoint scored on both devices: the perplexity agrees to 1e-3 (relative), for an exact and a
// FAVOR model (the random features travel in the checkpoint).
TEST(Cuda, CheckpointTrainedOnCudaEvaluatesOnCpuToTheSamePerplexity) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto proteins_of = [](const std::string& path) {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& r : read_all(path)) out.emplace_back(r.accession, r.residues);
    return out;
  };
  const auto proteins = proteins_of(data_path("real_excerpt.fasta"));
  for (const char* kind : {"exact", "favor-softmax"}) {
    SCOPED_TRACE(kind);
    TempDir dir;
    RunConfig c = tiny_on_cuda(dir.path(), {"train.steps=30", "eval.every=0", std::string("model.kind=") + kind});
    TrainOptions o;
    o.progress_bar = false;
    train(c, o);
    const std::string ckpt = dir.file("best.h5");
    ASSERT_TRUE(std::filesystem::exists(ckpt));
    double ppl[2] = {0, 0};
    int i = 0;
    for (const torch::Device device : {torch::Device(torch::kCUDA), torch::Device(torch::kCPU)}) {
      RunConfig stored;
      Encoder model = model_from_checkpoint(ckpt, stored, device);
      PerplexityOptions po;
      po.repeats = 2;
      ppl[i++] = summarize(score_proteins(model, proteins, po, device)).perplexity;
    }
    std::printf("  %s: perplexity on CUDA %.6f, on CPU %.6f\n", kind, ppl[0], ppl[1]);
    EXPECT_TRUE(std::isfinite(ppl[0]));
    EXPECT_LT(std::abs(ppl[0] - ppl[1]) / ppl[1], 1e-3);
  }
}

// A cell run past the allocator's memory fraction (the limit the sweep sets on CUDA) is reported as OOM
// with CUDA's own message, and the sweep goes on with the next cell.
TEST(Cuda, LongseqCapturesACudaOutOfMemoryAndGoesOn) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  TempDir dir;
  const CliRun r = run_performer("longseq -c " + project_root() + "/configs/tiny.yaml --set data.train=" +
                                 data_path("real_excerpt.fasta") + " --set runtime.device=cuda --lengths 1024,1048576 "
                                 "--kinds exact,favor-relu --steps 2 --timing-warmup 0 --eval-tokens 512 "
                                 "--memory-limit 2GB --no-prediction --out " + dir.path());
  ASSERT_EQ(r.status, 0) << r.out;
  auto cells = read_longseq_csv(dir.file("results.csv"));
  ASSERT_EQ(cells.size(), 4u) << r.out;
  for (const auto& cell : cells) {
    SCOPED_TRACE(attention_kind_name(cell.kind) + " L=" + std::to_string(cell.length));
    // The child's own output, for a failure on a GPU machine whose temporary folder is gone afterwards.
    const std::string log =
        dir.file("L" + std::to_string(cell.length) + "-" + attention_kind_name(cell.kind) + "/cell.log");
    if (cell.status == CellStatus::kError && std::filesystem::exists(log))
      std::printf("%s:\n%s\n", log.c_str(), read_text(log).c_str());
    if (cell.length == 1024) {
      EXPECT_EQ(cell.status, CellStatus::kOk) << cell.note;
    } else {
      EXPECT_EQ(cell.status, CellStatus::kOom) << cell.note;
      EXPECT_EQ(cell.note.find("predicted"), std::string::npos) << cell.note;  // a real failure
      EXPECT_NE(cell.note.find("out of memory"), std::string::npos) << cell.note;
    }
  }
}
