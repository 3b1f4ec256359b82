// The long-sequence sweep: its concatenated data at the sweep's lengths, the per-cell configuration, the
// memory prediction, the child's report, the plots, and `performer longseq` end to end (predicted OOM,
// captured OOM, a CSV row for every cell, the sweep going on after an OOM cell).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "data/alphabet.h"
#include "data/batches.h"
#include "io/plot.h"
#include "io/png.h"
#include "test_util.h"
#include "experiments/longseq.h"
#include "model/exact_attention.h"
#include "train/memory.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

std::string run_cli(const std::string& args, int& status) {
  CliRun r = run_performer(args);
  status = r.status;
  return r.out;
}

// results.csv as (kind, length) -> row (read_longseq_csv is tested on its own below).
struct Row {
  std::string status, note;
  double tokens_per_second = 0, predicted = 0, peak = 0;
};
std::map<std::pair<std::string, int64_t>, Row> read_results(const std::string& path) {
  std::map<std::pair<std::string, int64_t>, Row> rows;
  for (const auto& c : read_longseq_csv(path))
    rows[{attention_kind_name(c.kind), c.length}] =
        Row{cell_status_name(c.status), c.note, c.tokens_per_second, c.predicted_bytes, c.peak_bytes};
  return rows;
}

const std::string kTiny = std::string(PERFORMER_TEST_DATA) + "/../../configs/tiny.yaml";
RunConfig tiny_config() { return load_config(kTiny); }
// `performer longseq` on the tiny config and the committed excerpt (absolute path: tests run in the build folder).
std::string longseq_args() { return "longseq -c " + kTiny + " --set data.train=" + data_path("real_excerpt.fasta") + " "; }

}  // namespace

// The data every cell trains on: proteins joined by <eos> and cut into chunks of exactly L tokens (only the
// last chunk of an epoch padded), every train residue once per epoch, at lengths shorter than most proteins,
// around them, and longer than the whole split.
TEST(LongseqData, ConcatChunksExactlyLAtSweepLengths) {
  auto recs = read_all(data_path("real_excerpt.fasta"));
  std::vector<std::string> seqs;
  std::vector<Split> splits;
  int64_t residues = 0;
  for (auto& r : recs) {
    seqs.push_back(r.residues);
    splits.push_back(Split::kTrain);
    residues += static_cast<int64_t>(r.residues.size());
  }
  Corpus corpus = Corpus::from_sequences(seqs, splits);
  RunConfig base = tiny_config();
  for (int64_t L : {16, 100, 1024, 8192, 65536}) {
    RunConfig c = longseq_cell_config(base, L, AttentionKind::kFavorRelu, 2, 4096, "unused");
    BatchOptions o;
    o.max_len = c.data.max_len;
    o.tokens_per_batch = c.data.tokens_per_batch;
    o.seed = 7;
    ConcatBatches batches(corpus, Split::kTrain, o);
    int64_t real = 0, eos = 0, short_rows = 0, rows = 0;
    std::multiset<std::string> got;
    std::string cur;
    for (int64_t i = 0; i < batches.num_batches(0); ++i) {
      Batch b = batches.batch(0, i);
      ASSERT_EQ(b.tokens.size(1), L);
      for (int64_t r = 0; r < b.tokens.size(0); ++r, ++rows) {
        const int64_t n = b.padding_mask[r].sum().item<int64_t>();
        if (n < L) ++short_rows;
        for (int64_t k = 0; k < n; ++k) {
          const auto t = static_cast<Token>(b.tokens[r][k].item<int64_t>());
          ++real;
          if (t == Alphabet::kEos) {
            ++eos;
            got.insert(cur);
            cur.clear();
          } else {
            ASSERT_TRUE(Alphabet::is_residue(t)) << "L=" << L;
            cur += Alphabet::decode(&t, 1, false);
          }
        }
        for (int64_t k = n; k < L; ++k) ASSERT_EQ(b.tokens[r][k].item<int64_t>(), Alphabet::kPad);
      }
    }
    EXPECT_LE(short_rows, 1) << "L=" << L;
    EXPECT_EQ(real, residues + static_cast<int64_t>(recs.size())) << "L=" << L;
    EXPECT_EQ(eos, static_cast<int64_t>(recs.size())) << "L=" << L;
    EXPECT_EQ(rows, (residues + static_cast<int64_t>(recs.size()) + L - 1) / L) << "L=" << L;
    EXPECT_EQ(got, std::multiset<std::string>(seqs.begin(), seqs.end())) << "L=" << L;
  }
}

TEST(Longseq, CellConfigSetsLengthKindConcatAndEvalBudget) {
  RunConfig base = tiny_config();
  RunConfig c = longseq_cell_config(base, 4096, AttentionKind::kExact, 9, 10000, "/tmp/x/L4096-exact");
  EXPECT_TRUE(c.data.concat);
  EXPECT_EQ(c.data.max_len, 4096);
  EXPECT_EQ(c.model.max_len, 4096);
  EXPECT_EQ(c.model.kind, AttentionKind::kExact);
  EXPECT_EQ(c.train.steps, 9);
  EXPECT_LT(c.train.warmup_steps, 9);
  EXPECT_EQ(c.eval.max_sequences, 3);  // ceil(10000 / 4096): the same valid residues at every length
  EXPECT_EQ(longseq_cell_config(base, 1000, AttentionKind::kExact, 9, 10000, "d").eval.max_sequences, 10);
  EXPECT_EQ(c.output.dir, "/tmp/x/L4096-exact");
  EXPECT_EQ(c.model.seed, base.model.seed);
  EXPECT_EQ(c.runtime.seed, base.runtime.seed);
  EXPECT_THROW(parse_attention_kind("linear"), Error);  // kinds reach the sweep as AttentionKind
}

// One sequence per batch (tokens_per_batch <= L): FAVOR grows ~2x per doubling of L; exact ~4x at long
// lengths where its kernel stores the L x L matrices (LibTorch 1.x), ~2x where it is fused (2.x).
TEST(Longseq, PredictionFollowsTheAttentionKernel) {
  RunConfig base = tiny_config();
  base.data.tokens_per_batch = 1;
  auto need = [&](AttentionKind kind, int64_t L) {
    return predict_training_bytes(longseq_cell_config(base, L, kind, 1, 1, "d"), 0.0);
  };
  const AttentionKind exact = AttentionKind::kExact, relu = AttentionKind::kFavorRelu;
  const double e1 = need(exact, 8192), e2 = need(exact, 16384);
  const double f1 = need(relu, 8192), f2 = need(relu, 16384);
  EXPECT_GT(f2 / f1, 1.7);
  EXPECT_LT(f2 / f1, 2.01);
  const double quad = 4.0 * base.model.heads * 16384.0 * 16384.0 * static_cast<double>(base.model.layers + 2);
  if (exact_attention_stores_scores()) {
    EXPECT_GT(e2 / e1, 3.5);
    EXPECT_LT(e2 / e1, 4.01);
    EXPECT_GT(e2, 10 * f2);
    // The quadratic term itself: 4 bytes x H x L^2 x (layers + 2), within the 1.1 slack.
    EXPECT_GT(e2, quad);
    EXPECT_LT(e2, 1.2 * quad);
  } else {
    EXPECT_GT(e2 / e1, 1.7);
    EXPECT_LT(e2 / e1, 2.01);
    EXPECT_LT(e2, f2);  // the lean FAVOR core keeps two numbers per position and head besides
    EXPECT_LT(e2, 0.1 * quad);
  }
  // FAVOR with stored features keeps 6 [L, m] tensors per head and layer; the lean core (default) 2 numbers.
  RunConfig stored = longseq_cell_config(base, 16384, relu, 1, 1, "d");
  stored.model.favor_lean = false;
  const double H = static_cast<double>(base.model.heads), m = static_cast<double>(base.model.features);
  EXPECT_NEAR(predict_training_bytes(stored, 0.0) - f2,
              1.1 * 4.0 * 16384.0 * static_cast<double>(base.model.layers) * (6 * H * m - 2 * H), 1.0);
  EXPECT_DOUBLE_EQ(need(exact, 1024) + 5e6, predict_training_bytes(longseq_cell_config(base, 1024, exact, 1, 1, "d"), 5e6));
}

// The child's result document (experiments/cell.h) carries every figure of a cell back to the sweep.
TEST(Longseq, CellReportRoundTrips) {
  LongseqCell a;
  a.status = CellStatus::kOom;
  a.note = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 268435456 bytes";
  a.tokens_per_second = 1234.5;
  a.peak_bytes = 3.5e9;
  a.start_bytes = 2e8;
  a.final_loss = 2.75;
  a.valid_perplexity = 15.5;
  a.valid_accuracy = 0.2;
  a.strict_perplexity = 17.25;
  a.strict_accuracy = 0.1;
  a.rows = 2;
  a.steps = 80;
  LongseqCell b;
  apply_longseq_report(parse_cell_report(format_cell_report(longseq_cell_report(a)), "result.yaml"), b);
  EXPECT_EQ(b.status, a.status);
  EXPECT_EQ(b.note, a.note);
  EXPECT_DOUBLE_EQ(b.tokens_per_second, a.tokens_per_second);
  EXPECT_DOUBLE_EQ(b.peak_bytes, a.peak_bytes);
  EXPECT_DOUBLE_EQ(b.start_bytes, a.start_bytes);
  EXPECT_DOUBLE_EQ(b.final_loss, a.final_loss);
  EXPECT_DOUBLE_EQ(b.valid_perplexity, a.valid_perplexity);
  EXPECT_DOUBLE_EQ(b.valid_accuracy, a.valid_accuracy);
  EXPECT_DOUBLE_EQ(b.strict_perplexity, a.strict_perplexity);
  EXPECT_DOUBLE_EQ(b.strict_accuracy, a.strict_accuracy);
  EXPECT_EQ(b.rows, 2);
  EXPECT_EQ(b.steps, 80);
  // A causal cell has no all-masked figures: NaN survives the round trip.
  a.status = CellStatus::kOk;
  a.note.clear();
  a.strict_perplexity = a.strict_accuracy = std::nan("");
  apply_longseq_report(parse_cell_report(format_cell_report(longseq_cell_report(a)), "result.yaml"), b);
  EXPECT_EQ(b.status, CellStatus::kOk);
  EXPECT_EQ(b.note, "");
  EXPECT_TRUE(std::isnan(b.strict_perplexity) && std::isnan(b.strict_accuracy));
  EXPECT_DOUBLE_EQ(b.valid_perplexity, a.valid_perplexity);
  // A report without the sweep's figures, or with a status that is not one, is an error naming it.
  LongseqCell c;
  EXPECT_THROW(apply_longseq_report(parse_cell_report("status: ok\nfigures: {rows: 1}\n", "r.yaml"), c), Error);
  try {
    parse_cell_report("status: fine\nfigures: {rows: 1}\n", "L64-exact/result.yaml");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("L64-exact/result.yaml: cell status 'fine'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_cell_report("crashed before reporting", "r.yaml"), Error);
}

TEST(Longseq, ResultsCsvRoundTripsAndRejectsMalformedRows) {
  LongseqCell a;
  a.length = 8192;
  a.kind = AttentionKind::kFavorRelu;
  a.rows = 1;
  a.tokens_per_step = 8192;
  a.steps = 64;
  a.tokens_per_second = 25564.5;
  a.peak_bytes = 6.5e8;
  a.predicted_bytes = 7.6e8;
  a.valid_perplexity = 15.335;
  a.note = "a note, with a comma";
  LongseqCell b = a;
  b.kind = AttentionKind::kExact;
  b.length = 16384;
  b.status = CellStatus::kOom;
  b.note = "predicted 38.5 GB > limit 22.7 GB, not run";
  TempDir dir;
  write_longseq_csv(dir.file("results.csv"), {a, b}, "cpu");
  auto cells = read_longseq_csv(dir.file("results.csv"));
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(cells[0].kind, AttentionKind::kFavorRelu);
  EXPECT_EQ(cells[0].length, 8192);
  EXPECT_EQ(cells[0].steps, 64);
  EXPECT_NEAR(cells[0].tokens_per_second, 25564.5, 0.1);
  EXPECT_NEAR(cells[0].valid_perplexity, 15.335, 1e-9);
  EXPECT_EQ(cells[0].note, a.note);
  EXPECT_EQ(cells[1].status, CellStatus::kOom);
  EXPECT_EQ(cells[1].note, b.note);
  EXPECT_TRUE(read_longseq_csv(dir.file("missing.csv")).empty());
  write_file(dir.file("bad.csv"), "header\ncpu,exact,notanumber,1,1,1,ok,1,1,1,1,1,1,1,1,1,1,\"\"\n");
  try {
    read_longseq_csv(dir.file("bad.csv"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv:2"), std::string::npos) << e.what();
  }
}

TEST(Plot, LinePlotDrawsSeriesAndWritesPng) {
  PlotSeries s1{"a", {1024, 2048, 4096}, {100, 200, 400}, {}};
  PlotSeries s2{"b", {1024, 2048}, {300, 300}, {4096}};
  PlotOptions o;
  o.log_x = o.log_y = true;
  o.x_ticks = {1024, 2048, 4096};
  o.references = {PlotReference{350, "LIMIT"}};
  Image img = line_plot({s1, s2}, o);
  EXPECT_EQ(img.width, 640);
  EXPECT_EQ(img.height, 420);
  // Both series colours appear (first: blue 0,114,178; second: orange 230,159,0).
  auto count = [&](uint8_t r, uint8_t g, uint8_t b) {
    int n = 0;
    for (size_t i = 0; i + 2 < img.rgb.size(); i += 3) n += img.rgb[i] == r && img.rgb[i + 1] == g && img.rgb[i + 2] == b;
    return n;
  };
  EXPECT_GT(count(0, 114, 178), 200);
  EXPECT_GT(count(230, 159, 0), 200);
  TempDir dir;
  write_png(dir.file("p.png"), img);
  EXPECT_EQ(png_size(dir.file("p.png")), std::make_pair(640, 420));
  EXPECT_EQ(tick_label(1024), "1024");
  EXPECT_EQ(tick_label(2.5e9), "2.5G");
  EXPECT_EQ(tick_label(3e13), "30T");
  EXPECT_EQ(tick_label(1e15), "1e15");
  EXPECT_EQ(tick_label(2.5e16), "2.5e16");
  EXPECT_EQ(tick_label(3e6), "3M");
  EXPECT_EQ(tick_label(150000), "150K");
  EXPECT_EQ(tick_label(0.5), "0.5");
}

// A limit between what FAVOR and exact attention need at L=4096 where exact stores its L x L matrices
// (LibTorch 1.x): the exact cell is predicted OOM and not run, the other cells run, and results.csv has
// every cell. Where exact attention is fused (2.x) its need is linear too, and at L=65536 both kinds are
// predicted beyond the limit.
TEST(LongseqCli, PredictedOomReportedAndSweepContinues) {
  TempDir dir;
  int status = -1;
  const bool quadratic = exact_attention_stores_scores();
  const int64_t big = quadratic ? 4096 : 65536;
  const std::string out = run_cli(longseq_args() + "--lengths 64," + std::to_string(big) + " --kinds exact,favor-relu --steps 2 "
                                      "--timing-warmup 0 --eval-tokens 512 --memory-limit 700MB --out " + dir.path(),
                                  status);
  ASSERT_EQ(status, 0) << out;
  auto rows = read_results(dir.file("results.csv"));
  ASSERT_EQ(rows.size(), 4u) << out;
  for (auto& [key, r] : rows) {
    SCOPED_TRACE(key.first + " " + std::to_string(key.second));
    if (key.second == big && (key.first == "exact" || !quadratic)) {
      EXPECT_EQ(r.status, "OOM");
      EXPECT_GT(r.predicted, 7e8);
      EXPECT_NE(r.note.find("predicted"), std::string::npos) << r.note;
    } else {
      EXPECT_EQ(r.status, "ok") << r.note;
      EXPECT_GT(r.tokens_per_second, 0);
      EXPECT_GT(r.peak, 0);
      EXPECT_LT(r.predicted, 7e8);
    }
  }
  if (quadratic) {
    EXPECT_NE(out.find("exact is OOM"), std::string::npos) << out;
  }
  for (const char* png : {"tokens_per_second.png", "peak_memory.png", "perplexity_L64.png"})
    EXPECT_TRUE(std::filesystem::exists(dir.file(png))) << png;
  EXPECT_FALSE(read_eval_curve(dir.file(quadratic ? "L4096-favor-relu" : "L64-favor-relu")).empty());
  EXPECT_TRUE(std::filesystem::exists(dir.file("L64-exact/best.h5")));

  // --resume keeps every finished cell (OOM included) and only redraws; more steps rerun the ok cells.
  std::filesystem::remove(dir.file("tokens_per_second.png"));
  const std::string again = run_cli(longseq_args() + "--lengths 64," + std::to_string(big) + " --kinds exact,favor-relu --steps 2 "
                                    "--eval-tokens 512 --memory-limit 700MB --resume --out " + dir.path(), status);
  ASSERT_EQ(status, 0) << again;
  size_t kept = 0;
  for (size_t p = again.find("kept"); p != std::string::npos; p = again.find("kept", p + 1)) ++kept;
  EXPECT_EQ(kept, 4u) << again;
  EXPECT_EQ(again.find("training 2 steps"), std::string::npos) << again;
  EXPECT_TRUE(std::filesystem::exists(dir.file("tokens_per_second.png")));
  auto rows_again = read_results(dir.file("results.csv"));
  ASSERT_EQ(rows_again.size(), 4u);
  for (auto& [key, r] : rows) EXPECT_EQ(rows_again[key].tokens_per_second, r.tokens_per_second);
  const std::string more = run_cli(longseq_args() + "--lengths 64 --kinds favor-relu --steps 3 --eval-tokens 512 "
                                   "--memory-limit 700MB --resume --out " + dir.path(), status);
  ASSERT_EQ(status, 0) << more;
  EXPECT_NE(more.find("training 3 steps"), std::string::npos) << more;
  auto rows_more = read_results(dir.file("results.csv"));
  EXPECT_EQ(rows_more.size(), 4u);  // the cells outside this sweep are kept
  EXPECT_EQ(rows_more[std::make_pair(std::string("exact"), big)].status, "OOM");
}

// Without the prediction the cells at L = 65536 start, run into the limit, and are reported as OOM: from an
// allocation the system refuses (larger than the machine), or killed by the sweep once their resident
// memory passes the limit (experiments/cell.h); the FAVOR cell after the exact one still runs, and the
// short cells are unaffected.
TEST(LongseqCli, ActualOomCapturedAndSweepContinues) {
  TempDir dir;
  int status = -1;
  const std::string out = run_cli(longseq_args() + "--lengths 1024,65536 --kinds exact,favor-relu --steps 2 "
                                      "--timing-warmup 0 --eval-tokens 512 --memory-limit 700MB --no-prediction --out " +
                                      dir.path(),
                                  status);
  ASSERT_EQ(status, 0) << out;
  auto rows = read_results(dir.file("results.csv"));
  ASSERT_EQ(rows.size(), 4u) << out;
  for (const char* kind : {"exact", "favor-relu"}) {
    const Row& big = rows[std::make_pair(std::string(kind), int64_t{65536})];
    EXPECT_EQ(big.status, "OOM") << kind << "\n" << out;
    EXPECT_EQ(big.note.find("predicted"), std::string::npos) << big.note;  // a real failure, not the prediction
    EXPECT_TRUE(big.note.find("allocate") != std::string::npos || big.note.find("passed the limit") != std::string::npos)
        << big.note;
    const Row& small = rows[std::make_pair(std::string(kind), int64_t{1024})];
    EXPECT_EQ(small.status, "ok") << kind << "\n" << out;
  }
}

// A cell whose limit is below its need ends at once as OOM. Under an address-space limit inside the cell,
// OpenBLAS retried its failed buffer allocation forever and the cell spun until --cell-timeout (2 hours);
// the sweep now watches the cell's resident memory and ends it past the limit.
TEST(LongseqCli, ACellBelowItsMemoryNeedEndsAtOnceAsOom) {
  TempDir dir;
  int status = -1;
  const std::string base = "longseq --config " + project_root() + "/configs/longseq.yaml --set data.train=" +
                           data_path("real_excerpt.fasta") + " --set data.valid_frac=0.2 --set data.tokens_per_batch=1024 ";
  // The start-up footprint of this build (LibTorch 2.x holds more than 1.x), from the refusal of a limit
  // below it; the limit is then 40 MB above it, for a cell that needs far more (18 M parameters: ~290 MB of
  // weights, gradients and Optimizer moments).
  const std::string refused = run_cli(base + "--memory-limit 1MB --out " + dir.file("probe"), status);
  const auto at = refused.find("start-up footprint (");
  ASSERT_NE(at, std::string::npos) << refused;
  const double footprint_mb = std::stod(refused.substr(at + 20));
  ASSERT_NE(refused.find(" MB of anonymous memory", at), std::string::npos) << refused;
  const std::string limit = std::to_string(static_cast<int>(footprint_mb + 40)) + "MB";
  const auto t0 = std::chrono::steady_clock::now();
  const std::string out = run_cli(base + "--set model.d_model=512 --set model.d_ff=8192 --lengths 1024 --kinds favor-relu "
                                         "--steps 2 --memory-limit " + limit + " --no-prediction --out " + dir.path(),
                                  status);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(status, 0) << out;
  EXPECT_LT(seconds, 120) << out;
  auto rows = read_results(dir.file("results.csv"));
  ASSERT_EQ(rows.size(), 1u) << out;
  const Row& r = rows.begin()->second;
  EXPECT_EQ(r.status, "OOM") << out;
  EXPECT_NE(r.note.find("resident memory passed the limit of"), std::string::npos) << r.note;
}

TEST(LongseqCli, BadOptionsFailWithOneLine) {
  TempDir dir;
  int status = 0;
  std::string out = run_cli(longseq_args() + "--kinds exact,linear --out " + dir.path(), status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--kinds: attention kind 'linear': expected exact, favor-softmax or favor-relu"), std::string::npos)
      << out;
  out = run_cli(longseq_args() + "--memory-limit 12XB --out " + dir.path(), status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("12XB"), std::string::npos) << out;
  // Every item whole: nothing is cut short to a number ("512x" was 512, "256.9" 256, "1e3" 1).
  for (const char* bad : {"abc", "512x", "256.9", "1e3", "0", "-64"}) {
    out = run_cli(longseq_args() + "--lengths 1024," + bad + " --out " + dir.path(), status);
    EXPECT_NE(status, 0) << bad;
    EXPECT_NE(out.find(std::string("'") + bad + "' is not a positive whole number"), std::string::npos) << out;
  }
  // --steps must be positive (0 or -3 used to run the config's steps silently).
  for (const char* steps : {"0", "-3"}) {
    out = run_cli(longseq_args() + "--steps " + steps + " --out " + dir.path(), status);
    EXPECT_NE(status, 0) << steps;
    EXPECT_NE(out.find("--steps"), std::string::npos) << out;
  }
}

TEST(LongseqCli, CellPastItsDeadlineIsKilledAndReportedTimeout) {
  // A cell that cannot finish in time (here 5,000 steps against a 1 s deadline) no longer hangs the sweep:
  // it is killed, reported TIMEOUT with its note, and the next cell still runs.
  TempDir dir;
  int status = 0;
  const std::string out = run_cli(longseq_args() + "--lengths 64 --kinds favor-relu,exact --steps 5000 --cell-timeout 1 "
                                                   "--out " + dir.path(), status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("TIMEOUT: no result within"), std::string::npos) << out;
  std::ifstream csv(dir.file("results.csv"));
  std::stringstream s;
  s << csv.rdbuf();
  EXPECT_NE(s.str().find("TIMEOUT"), std::string::npos) << s.str();
  // A memory limit below a cell's own start-up footprint is refused before anything runs.
  TempDir other;
  const std::string small = run_cli(longseq_args() + "--memory-limit 10MB --out " + other.file("o"), status);
  EXPECT_NE(status, 0);
  EXPECT_NE(small.find("start-up footprint"), std::string::npos) << small;
  EXPECT_FALSE(std::filesystem::exists(other.file("o")));
}
