// `performer embed`: windows of long proteins cover every residue once, a protein's embedding does not
// depend on the batch it is in, mean pooling is the mean of the residue vectors, and the HDF5 output keeps
// every protein (duplicate accessions included) in input order.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

#include <unistd.h>

#include "analysis/embeddings.h"
#include "io/hdf5.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

std::string random_protein(int64_t n, uint32_t seed) {
  static const std::string kAmino = "ACDEFGHIKLMNPQRSTVWY";
  std::mt19937 rng(seed);
  std::string s;
  for (int64_t i = 0; i < n; ++i) s += kAmino[rng() % kAmino.size()];
  return s;
}

// The tiny model (max_len 128: windows of 126 residues), randomly initialized, in eval mode.
Encoder tiny_model(RunConfig& c) {
  c = tiny_run_config("/tmp/unused");
  torch::manual_seed(3);
  Encoder m(c.model);
  m->eval();
  return m;
}

// `model` saved as dir/model.h5 with its config, as a training run would; the path.
std::string save_model(const TempDir& dir, Encoder& model, const RunConfig& c) {
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (auto& p : model->named_parameters()) params.emplace_back(p.key(), p.value());
  Optimizer opt(params, OptimizerOptions{});
  TrainState st;
  st.config_yaml = config_to_yaml(c);
  save_checkpoint(dir.file("model.h5"), model, &opt, st);
  return dir.file("model.h5");
}

}  // namespace

TEST(Embed, WindowsCoverEveryResidueOnceFromTheirCentralPart) {
  for (int64_t n : {1, 125, 126, 127, 200, 251, 252, 253, 3000}) {
    const int64_t w = 126;
    const auto windows = embedding_windows(n, w);
    int64_t next = 0;
    for (size_t k = 0; k < windows.size(); ++k) {
      const ResidueWindow& r = windows[k];
      EXPECT_EQ(r.keep_begin, next) << "n " << n << " window " << k;  // the kept ranges tile [0, n)
      EXPECT_LT(r.keep_begin, r.keep_end);
      EXPECT_GE(r.keep_begin, r.start);
      EXPECT_LE(r.keep_end, r.start + r.length);
      EXPECT_LE(r.length, w);
      // Away from the protein's ends, a kept residue has at least w/4 - 1 residues of context on each side.
      if (r.keep_begin > 0) {
        EXPECT_GE(r.keep_begin - r.start, w / 4 - 1) << "n " << n;
      }
      if (r.keep_end < n) {
        EXPECT_GE(r.start + r.length - r.keep_end, w / 4 - 1) << "n " << n;
      }
      next = r.keep_end;
    }
    EXPECT_EQ(next, n);
    if (n <= w) {
      EXPECT_EQ(windows.size(), 1u);
    }
  }
  EXPECT_THROW(embedding_windows(10, 1), Error);
}

TEST(Embed, AProteinEmbedsTheSameAloneAndInAPaddedBatch) {
  RunConfig c;
  Encoder model = tiny_model(c);
  const std::string a = random_protein(40, 1), longer = random_protein(120, 2), shorter = random_protein(9, 3);
  EmbedOptions o;
  o.layers = resolve_layers({-1, 0, 1}, c.model.layers);
  o.pool = Pooling::kBoth;
  o.per_residue = true;
  const auto alone = embed_proteins(model, {a}, o, torch::kCPU);
  const auto batched = embed_proteins(model, {longer, a, shorter}, o, torch::kCPU);
  for (size_t k = 0; k < o.layers.size(); ++k) {
    EXPECT_TRUE(torch::allclose(alone[0].mean[k], batched[1].mean[k], 0, 1e-5)) << "layer " << o.layers[k];
    EXPECT_TRUE(torch::allclose(alone[0].cls[k], batched[1].cls[k], 0, 1e-5)) << "layer " << o.layers[k];
    EXPECT_TRUE(torch::allclose(alone[0].residues[k], batched[1].residues[k], 0, 1e-5)) << "layer " << o.layers[k];
    // Mean pooling is the mean of the residue vectors.
    EXPECT_TRUE(torch::allclose(batched[2].mean[k], batched[2].residues[k].mean(0), 0, 1e-6));
    EXPECT_EQ(batched[0].residues[k].size(0), 120);
  }
  // Layer 0 is the embeddings, the last the final LayerNorm's output: different vectors.
  EXPECT_FALSE(torch::allclose(alone[0].mean[0], alone[0].mean[1], 0, 1e-3));
}

TEST(Embed, ALongProteinEmbedsInWindowsWithoutError) {
  RunConfig c;
  Encoder model = tiny_model(c);
  const std::string long_protein = random_protein(3000, 4);
  EmbedOptions o;
  o.layers = {c.model.layers};
  o.per_residue = true;
  o.tokens_per_batch = 1024;
  const auto e = embed_proteins(model, {long_protein}, o, torch::kCPU);
  ASSERT_EQ(e[0].residues[0].size(0), 3000);
  EXPECT_TRUE(torch::isfinite(e[0].residues[0]).all().item<bool>());
  EXPECT_TRUE(torch::allclose(e[0].mean[0], e[0].residues[0].mean(0), 0, 1e-5));
  // A residue's vector comes from its central window: the same residue inside a 126-residue excerpt fed
  // alone has a different context, so only the excerpt's own first window matches exactly.
  const std::string head = long_protein.substr(0, 126);
  const auto h = embed_proteins(model, {head}, o, torch::kCPU);
  const auto windows = embedding_windows(3000, 126);
  EXPECT_TRUE(torch::allclose(h[0].residues[0].narrow(0, 0, windows[0].keep_end),
                              e[0].residues[0].narrow(0, 0, windows[0].keep_end), 0, 1e-5));
}

TEST(Embed, LayersAreResolvedAndCheckedWithOneLineErrors) {
  EXPECT_EQ(resolve_layers({-1, 0, 2}, 4), (std::vector<int64_t>{4, 0, 2}));
  EXPECT_EQ(resolve_layers({-5}, 4), (std::vector<int64_t>{0}));
  for (const std::vector<int64_t>& bad : {std::vector<int64_t>{5}, {-6}, {1, 1}, {-1, 4}, {}}) {
    try {
      resolve_layers(bad, 4);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
  EXPECT_THROW(parse_pooling("max"), Error);
}

TEST(Embed, CliWritesEveryProteinInOrderIncludingDuplicateAccessions) {
  TempDir dir;
  RunConfig c;
  Encoder model = tiny_model(c);
  save_model(dir, model, c);
  // Two records with one accession (different sequences), one long protein, one short.
  const std::string a = random_protein(30, 5), b = random_protein(50, 6), long_one = random_protein(300, 7);
  write_file(dir.file("in.fasta"), ">P1 first\n" + a + "\n>P1 second copy\n" + b + "\n>LONG\n" + long_one + "\n>S\nMKV\n");
  CliRun r = run_performer("embed -q --checkpoint " + dir.file("model.h5") + " --input " + dir.file("in.fasta") +
                           " --out " + dir.file("e.h5") + " --layers -1,0 --pool both --per-residue --chunk 2");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("4 proteins, 383 residues"), std::string::npos) << r.out;
  h5::Handle f = h5::open_file(dir.file("e.h5"));
  EXPECT_EQ(h5::read_strings(f, "proteins/accessions"), (std::vector<std::string>{"P1", "P1", "LONG", "S"}));
  EXPECT_EQ(h5::read_array<int64_t>(f, "proteins/lengths"), (std::vector<int64_t>{30, 50, 300, 3}));
  EXPECT_EQ(h5::read_array<int64_t>(f, "per_residue/offsets"), (std::vector<int64_t>{0, 30, 80, 380, 383}));
  const auto last = h5::read_array<float>(f, "per_protein/layer_" + std::to_string(c.model.layers));
  ASSERT_EQ(last.size(), static_cast<size_t>(4 * c.model.d_model));
  // Row 1 (the second "P1") is b's embedding, not a's.
  EmbedOptions o;
  o.layers = {c.model.layers};
  const auto eb = embed_proteins(model, {b}, o, torch::kCPU);
  for (int64_t i = 0; i < c.model.d_model; ++i)
    EXPECT_NEAR(last[static_cast<size_t>(c.model.d_model + i)], eb[0].mean[0][i].item<float>(), 1e-5);
  const auto residues = h5::read_array<float>(f, "per_residue/layer_0");
  EXPECT_EQ(residues.size(), static_cast<size_t>(383 * c.model.d_model));
  EXPECT_EQ(h5::read_attr_string(f, "format"), "performer-embeddings");
  EXPECT_EQ(h5::read_attr_string(f, "pooling"), "both");
  EXPECT_TRUE(h5::exists(f, "per_protein_cls/layer_0"));
  // Bad input: a one-line error, no output file.
  write_file(dir.file("bad.fasta"), "MKV\n>X\nMKV\n");  // sequence before any header
  CliRun bad = run_performer("embed -q --checkpoint " + dir.file("model.h5") + " --input " + dir.file("bad.fasta") +
                             " --out " + dir.file("bad.h5"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("bad.fasta:1: sequence data before any header"), std::string::npos) << bad.out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.h5")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.h5.partial"))) << "nothing was committed: no partial file";
  CliRun layer = run_performer("embed -q --checkpoint " + dir.file("model.h5") + " --input " + dir.file("in.fasta") +
                               " --out " + dir.file("x.h5") + " --layers 9");
  EXPECT_NE(layer.status, 0);
  EXPECT_NE(layer.out.find("--layers (0 = the embeddings, -1 = the last layer): 9 does not exist (0..2, or -3..-1"),
            std::string::npos) << layer.out;
}

namespace {

// `count` random proteins of 20..(20 + spread) residues, some longer than the tiny model's window.
std::string random_fasta(int count, int spread, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string text;
  for (int i = 0; i < count; ++i)
    text += ">A" + std::to_string(i) + "\n" + random_protein(20 + static_cast<int64_t>(rng() % spread), seed + i) + "\n";
  return text;
}

// Every dataset of two embedding files: the same names and shapes, equal integers and strings, floats
// within `tol`.
void expect_same_embeddings(const std::string& a, const std::string& b, float tol) {
  h5::Handle fa = h5::open_file(a), fb = h5::open_file(b);
  EXPECT_EQ(h5::read_strings(fa, "proteins/accessions"), h5::read_strings(fb, "proteins/accessions"));
  EXPECT_EQ(h5::read_array<int64_t>(fa, "proteins/lengths"), h5::read_array<int64_t>(fb, "proteins/lengths"));
  EXPECT_EQ(h5::read_array<int64_t>(fa, "per_residue/offsets"), h5::read_array<int64_t>(fb, "per_residue/offsets"));
  for (const std::string name : {"per_protein/layer_0", "per_protein/layer_2", "per_protein_cls/layer_2",
                                 "per_residue/layer_0", "per_residue/layer_2"}) {
    EXPECT_EQ(h5::dataset_dims(fa, name), h5::dataset_dims(fb, name)) << name;
    const auto x = h5::read_array<float>(fa, name), y = h5::read_array<float>(fb, name);
    ASSERT_EQ(x.size(), y.size()) << name;
    float worst = 0;
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
    EXPECT_LE(worst, tol) << name;
  }
}

}  // namespace

// --stop-after, then a process killed after writing part of a chunk past the last commit (simulated: rows
// appended to every dataset), then --resume: the file equals the uninterrupted run's. A partial file is
// never overwritten without --resume, nor continued with other arguments, weights or inputs.
TEST(Embed, ResumeContinuesAnInterruptedRunToTheUninterruptedResult) {
  TempDir dir;
  RunConfig c;
  Encoder model = tiny_model(c);
  const std::string ckpt = save_model(dir, model, c);
  write_file(dir.file("in.fasta"), random_fasta(13, 300, 21));
  const std::string common = "embed -q --checkpoint " + ckpt + " --input " + dir.file("in.fasta") +
                             " --layers 0,-1 --pool both --per-residue";
  const std::string args = common + " --chunk 3 --out ";
  CliRun whole = run_performer(args + dir.file("whole.h5"));
  ASSERT_EQ(whole.status, 0) << whole.out;
  // A run whose --stop-after is reached with the last protein is complete.
  CliRun exact = run_performer(args + dir.file("exact.h5") + " --stop-after 13");
  EXPECT_EQ(exact.status, 0) << exact.out;
  EXPECT_TRUE(std::filesystem::exists(dir.file("exact.h5")));

  const std::string out = dir.file("part.h5"), partial = out + ".partial";
  CliRun first = run_performer(args + out + " --stop-after 4");
  EXPECT_EQ(first.status, 130) << first.out;
  EXPECT_NE(first.out.find("stopped after 6 proteins"), std::string::npos) << first.out;  // whole chunks
  EXPECT_NE(first.out.find("--resume"), std::string::npos) << first.out;
  EXPECT_FALSE(std::filesystem::exists(out));
  ASSERT_TRUE(std::filesystem::exists(partial));
  {
    // What a process killed in the middle of its next chunk leaves: rows past the commit, in every dataset.
    h5::Handle f = h5::open_file(partial, /*writable=*/true);
    const auto commit = h5::read_attr_ints(f, "commit");
    ASSERT_EQ(commit.size(), 3u);
    EXPECT_EQ(commit[0], 6);
    const auto d = static_cast<hsize_t>(c.model.d_model);
    const std::vector<float> junk(static_cast<size_t>(40 * d), 7.f);
    for (const std::string group : {"per_protein", "per_protein_cls", "per_residue"})
      for (const std::string layer : {"layer_0", "layer_2"}) {
        h5::Handle g = h5::open_group(f, group);
        const hsize_t rows = h5::dataset_dims(g, layer)[0];
        h5::RowAppender(g, layer, d, h5::Continue{rows}).append(junk.data(), 40);
      }
    h5::Handle r = h5::open_group(f, "per_residue");
    h5::Appender<int64_t> offsets(r, "offsets", 16, h5::Continue{7});
    offsets.append(int64_t{123456});
    offsets.flush();
    h5::Handle p = h5::open_group(f, "proteins");
    h5::Appender<int64_t> lengths(p, "lengths", 16, h5::Continue{6});
    lengths.append(int64_t{999});
    lengths.flush();
    h5::StringAppender acc(p, "accessions", 16, h5::Continue{6});
    acc.append("JUNK");
    acc.flush();
  }
  const std::string before = read_text(partial);
  // Without --resume: refused.
  CliRun again = run_performer(args + out);
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.out.find("holds 6 proteins of an interrupted run: add --resume"), std::string::npos) << again.out;
  // Other arguments: refused.
  CliRun other = run_performer("embed -q --checkpoint " + ckpt + " --input " + dir.file("in.fasta") +
                               " --layers 0,-1 --pool mean --per-residue --chunk 3 --resume --out " + out);
  EXPECT_EQ(other.status, 1);
  EXPECT_NE(other.out.find("cannot resume: it was started with --pool both, not mean"), std::string::npos) << other.out;
  // Other weights under the same name and step: refused.
  {
    RunConfig c2;
    Encoder retrained = tiny_model(c2);
    torch::NoGradGuard no_grad;
    for (auto& p : retrained->parameters()) p.add_(0.01);
    TempDir other_dir;
    std::filesystem::copy_file(save_model(other_dir, retrained, c2), dir.file("model2.h5"));
  }
  CliRun weights = run_performer("embed -q --checkpoint " + dir.file("model2.h5") + " --input " + dir.file("in.fasta") +
                                 " --layers 0,-1 --pool both --per-residue --chunk 3 --resume --out " + out);
  EXPECT_EQ(weights.status, 1);
  EXPECT_NE(weights.out.find("cannot resume: it was started with the weights of " + ckpt), std::string::npos)
      << weights.out;
  EXPECT_EQ(read_text(partial), before) << "a refused run leaves the partial file as it was";

  CliRun resumed = run_performer(common + " --chunk 4 --out " + out + " --resume");  // another chunk size is fine
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resumed after 6 proteins"), std::string::npos) << resumed.out;
  EXPECT_FALSE(std::filesystem::exists(partial));
  // Other chunks batch the windows differently: equal up to float rounding.
  expect_same_embeddings(dir.file("whole.h5"), out, 1e-5f);
  {
    h5::Handle f = h5::open_file(out);
    EXPECT_EQ(h5::read_attr_int(f, "proteins"), 13);
    EXPECT_EQ(static_cast<uint64_t>(h5::read_attr_int(f, "residues")), h5::dataset_dims(f, "per_residue/layer_0")[0]);
  }

  // Changed inputs of the same size (a renamed accession, an edited residue) fail the hash of what was
  // embedded; a grown input fails its size.
  ASSERT_EQ(run_performer(args + out + " --stop-after 3").status, 130);
  const std::string text = read_text(dir.file("in.fasta"));
  std::string renamed = text, edited = text;
  renamed.replace(renamed.find(">A2\n"), 4, ">B2\n");
  const size_t residue = edited.find('\n', edited.find(">A1\n") + 4) - 1;  // A1's last residue
  edited[residue] = edited[residue] == 'W' ? 'Y' : 'W';
  for (const std::string& changed : {renamed, edited}) {
    write_file(dir.file("in.fasta"), changed);
    CliRun moved = run_performer(args + out + " --resume");
    EXPECT_EQ(moved.status, 1);
    EXPECT_NE(moved.out.find("the first 3 proteins of the inputs (up to " + dir.file("in.fasta") + ":5) are not those it holds"),
              std::string::npos)
        << moved.out;
  }
  write_file(dir.file("in.fasta"), text + ">A13\nMKV\n");
  CliRun grown = run_performer(args + out + " --resume");
  EXPECT_EQ(grown.status, 1);
  EXPECT_NE(grown.out.find("an input has changed since"), std::string::npos) << grown.out;
  EXPECT_TRUE(std::filesystem::exists(partial)) << "a refused resume keeps the partial file";
}

// SIGTERM during a run, once chunks are committed: exit 130 at the last commit, and --resume skips what is
// done and completes the rest.
TEST(Embed, SigtermStopsAtTheLastCommitAndResumeCompletes) {
  TempDir dir;
  RunConfig c;
  Encoder model = tiny_model(c);
  const std::string ckpt = save_model(dir, model, c);
  const int kProteins = 3000, kChunk = 8;
  write_file(dir.file("in.fasta"), random_fasta(kProteins, 250, 5));
  const std::string out = dir.file("e.h5"), partial = out + ".partial";
  const std::string embed = std::string(PERFORMER_BINARY) + " embed -q --checkpoint " + ckpt + " --input " +
                            dir.file("in.fasta") + " --layers 0,-1 --pool both --chunk " + std::to_string(kChunk) +
                            " --out " + out;
  // The shell prints the pid, waits for the run and writes its exit status.
  FILE* p = ::popen((embed + " > " + dir.file("log") + " 2>&1 & echo $!; wait $!; echo $? > " + dir.file("status"))
                        .c_str(),
                    "r");
  ASSERT_NE(p, nullptr);
  int pid = 0;
  ASSERT_EQ(std::fscanf(p, "%d", &pid), 1);
  // Wait for a commit with proteins in it, reading the partial file while it is written (HDF5's file lock
  // off for this reader; a read that meets a flush in progress is retried).
  h5::Handle unlocked(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_file_locking(unlocked, false, true);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // a failed open is retried, not printed
  int64_t seen = 0;
  for (int i = 0; i < 3000 && seen == 0; ++i) {
    ::usleep(10000);
    if (!std::filesystem::exists(partial)) continue;
    h5::Handle f(H5Fopen(partial.c_str(), H5F_ACC_RDONLY, unlocked));
    if (!f.valid()) continue;
    try {
      seen = h5::read_attr_ints(f, "commit").at(0);
    } catch (const std::exception&) {
    }
  }
  ::kill(pid, SIGTERM);
  ::pclose(p);  // the shell is done once the run is
  ASSERT_GT(seen, 0) << "no commit seen";
  const std::string log = read_text(dir.file("log"));
  EXPECT_EQ(read_text(dir.file("status")), "130\n") << log;
  EXPECT_NE(log.find("the same command with --resume continues"), std::string::npos) << log;
  int64_t kept = 0;
  {
    h5::Handle f = h5::open_file(partial);
    kept = h5::read_attr_ints(f, "commit").at(0);
    EXPECT_EQ(kept % kChunk, 0);
    EXPECT_GE(kept, seen);
    EXPECT_LT(kept, kProteins) << "the run ended before the signal";
  }
  CliRun resumed = run_command(embed + " --resume 2>&1");
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resumed after " + std::to_string(kept) + " proteins"), std::string::npos) << resumed.out;
  h5::Handle f = h5::open_file(out);
  const auto accessions = h5::read_strings(f, "proteins/accessions");
  ASSERT_EQ(accessions.size(), static_cast<size_t>(kProteins));
  for (int i = 0; i < kProteins; ++i) ASSERT_EQ(accessions[static_cast<size_t>(i)], "A" + std::to_string(i));
  EXPECT_EQ(h5::dataset_dims(f, "per_protein/layer_2")[0], static_cast<hsize_t>(kProteins));
}
