// Held-out splits by sequence cluster (prepare --clusters): no cluster straddles two splits, the counts
// are reported, and malformed cluster files are one-line errors naming the file and the line. Sampling by
// cluster (data.sample: clusters): every epoch visits every cluster once through one member chosen by
// (seed, epoch, cluster). data.clusters: a sequence file prepared with a cluster split by `train`.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "data/batches.h"
#include "data/clusters.h"
#include "data/prepare.h"
#include "data/split_order.h"
#include "io/hdf5.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "util/error.h"

using namespace performer;
using namespace performer::testing;

namespace {

const std::string kTsv = "trembl_600.clusters50.tsv";

PrepareOptions with_clusters(const std::string& input, const std::string& tsv, const std::string& out) {
  PrepareOptions o;
  o.inputs = {data_path(input)};
  o.out = out;
  o.valid_frac = 0.2;
  o.test_frac = 0.2;
  o.progress = false;
  o.clusters = tsv;
  return o;
}

std::vector<std::pair<std::string, std::string>> tsv_rows(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::pair<std::string, std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    const auto tab = line.find('\t');
    rows.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return rows;
}

// The test TSV without the rows of 10 members that are not representatives: those proteins are then
// unlisted.
void write_partial_tsv(const std::string& path) {
  std::ofstream out(path);
  int dropped = 0;
  for (const auto& [rep, member] : tsv_rows(data_path(kTsv))) {
    if (rep != member && dropped < 10) {
      ++dropped;
      continue;
    }
    out << rep << '\t' << member << '\n';
  }
}

std::string error_of(const PrepareOptions& o) {
  try {
    prepare_corpus(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Clusters, NoClusterStraddlesTwoSplits) {
  TempDir dir;
  PrepareResult r = prepare_corpus(with_clusters("trembl_600.fasta.gz", data_path(kTsv), dir.file("c.h5")));
  EXPECT_EQ(r.stats.clusters, 564);
  EXPECT_EQ(r.stats.unclustered, 0);
  EXPECT_EQ(r.stats.cluster_members_absent, 0);
  EXPECT_NE(r.stats.summary().find("clusters: 564"), std::string::npos) << r.stats.summary();
  const Corpus c = Corpus::load(dir.file("c.h5"));
  // By the TSV itself: every member of a cluster is in its representative's split.
  std::map<std::string, Split> split_of;
  for (size_t i = 0; i < c.size(); ++i) split_of[c.accession(i)] = c.split(i);
  int multi = 0;
  std::map<std::string, std::set<Split>> splits_of_cluster;
  for (const auto& [rep, member] : tsv_rows(data_path(kTsv))) splits_of_cluster[rep].insert(split_of.at(member));
  for (const auto& [rep, splits] : splits_of_cluster) EXPECT_EQ(splits.size(), 1u) << "cluster " << rep;
  for (const auto& [rep, member] : tsv_rows(data_path(kTsv))) multi += rep != member;
  EXPECT_GT(multi, 20) << "the test needs clusters with several members";
  // The /cluster dataset holds the same grouping, and all three splits are used.
  h5::Handle f = h5::open_file(dir.file("c.h5"));
  const auto ids = h5::read_array<int64_t>(f, "cluster");
  ASSERT_EQ(ids.size(), c.size());
  std::map<int64_t, std::set<Split>> by_id;
  for (size_t i = 0; i < ids.size(); ++i) by_id[ids[i]].insert(c.split(i));
  EXPECT_EQ(by_id.size(), 564u);
  for (const auto& [id, splits] : by_id) EXPECT_EQ(splits.size(), 1u) << "cluster id " << id;
  for (int s = 0; s < kNumSplits; ++s) EXPECT_GT(r.stats.sequences[static_cast<size_t>(s)], 50) << "split " << s;
  EXPECT_EQ(h5::read_attr_string(f, "split_key"), "cluster");
}

TEST(Clusters, UnlistedProteinsAreTheirOwnClusterAndAbsentMembersAreCounted) {
  TempDir dir;
  write_partial_tsv(dir.file("partial.tsv"));
  PrepareResult r = prepare_corpus(with_clusters("trembl_600.fasta.gz", dir.file("partial.tsv"), dir.file("c.h5")));
  EXPECT_EQ(r.stats.unclustered, 10);
  EXPECT_EQ(r.stats.clusters, 564 + 10);
  // The first 60 proteins against the 600-protein file: 540 listed members are absent from the input.
  PrepareResult e = prepare_corpus(with_clusters("real_excerpt.fasta", data_path(kTsv), dir.file("e.h5")));
  EXPECT_EQ(e.stats.cluster_members_absent, 540);
  EXPECT_EQ(e.stats.unclustered, 0);
}

TEST(Clusters, MalformedFilesAreOneLineErrorsNamingFileAndLine) {
  TempDir dir;
  auto attempt = [&](const std::string& name, const std::string& text) {
    write_file(dir.file(name), text);
    return error_of(with_clusters("real_excerpt.fasta", dir.file(name), dir.file("out.h5")));
  };
  std::string e = attempt("missing.tsv", "W0FSK4\tW0FSK4\nM4KW32\n");
  EXPECT_NE(e.find(dir.file("missing.tsv") + ":2: expected two tab-separated columns"), std::string::npos) << e;
  e = attempt("three.tsv", "W0FSK4\tW0FSK4\tX\n");
  EXPECT_NE(e.find("three.tsv:1:"), std::string::npos) << e;
  e = attempt("twice.tsv", "W0FSK4\tW0FSK4\nM4KW32\tM4KW32\nM4KW32\tW0FSK4\n");
  EXPECT_NE(e.find("twice.tsv:3: member 'W0FSK4' is listed twice (first at line 1"), std::string::npos) << e;
  e = attempt("norep.tsv", "W0FSK4\tW0FSK4\nZZZ999\tM4KW32\n");
  EXPECT_NE(e.find("norep.tsv:2: representative 'ZZZ999' is not listed as a member of its own cluster"),
            std::string::npos) << e;
  e = attempt("empty.tsv", "");
  EXPECT_NE(e.find("empty.tsv: no clusters"), std::string::npos) << e;
  e = error_of(with_clusters("real_excerpt.fasta", dir.file("none.tsv"), dir.file("out.h5")));
  EXPECT_NE(e.find("none.tsv: cannot open"), std::string::npos) << e;
  for (const std::string& msg : {e}) EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.h5"))) << "nothing written on an error";
}

TEST(Clusters, PrepareCliReportsTheClusters) {
  TempDir dir;
  CliRun r = run_performer("prepare -q --input " + data_path("trembl_600.fasta.gz") + " --out " + dir.file("c.h5") +
                           " --clusters " + data_path(kTsv));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("clusters: 564 (split by cluster; train "), std::string::npos) << r.out;
}

namespace {

// The corpus indices an epoch visits, batch by batch.
std::vector<size_t> visited(const BatchSource& source, int64_t epoch) {
  std::vector<size_t> ids;
  for (int64_t i = 0; i < source.num_batches(epoch); ++i)
    for (int64_t id : source.batch(epoch, i).sequence_ids) ids.push_back(static_cast<size_t>(id));
  return ids;
}

}  // namespace

TEST(ClusterSampling, EveryEpochVisitsEveryClusterOnceThroughOneMember) {
  TempDir dir;
  PrepareResult r = prepare_corpus(with_clusters("trembl_600.fasta.gz", data_path(kTsv), dir.file("c.h5")));
  const Corpus corpus = Corpus::load(dir.file("c.h5"), false);
  ASSERT_TRUE(corpus.has_clusters());
  EXPECT_EQ(r.stats.split_clusters[0] + r.stats.split_clusters[1] + r.stats.split_clusters[2], r.stats.clusters);
  // Ranks and sizes as written: each cluster's kept members ranked 0..size-1 in corpus order.
  std::map<int64_t, std::vector<size_t>> members;  // cluster -> corpus indices, in corpus order
  for (size_t i = 0; i < corpus.size(); ++i) members[corpus.cluster(i)].push_back(i);
  int64_t train_clusters = 0;
  for (const auto& [c, ids] : members) {
    ASSERT_EQ(corpus.cluster_size(static_cast<uint64_t>(c)), static_cast<int32_t>(ids.size())) << "cluster " << c;
    for (size_t k = 0; k < ids.size(); ++k) ASSERT_EQ(corpus.cluster_rank(ids[k]), static_cast<int32_t>(k));
    train_clusters += corpus.split(ids[0]) == Split::kTrain;
  }
  EXPECT_EQ(train_clusters, r.stats.split_clusters[0]);

  BatchOptions bo;
  bo.max_len = 256;
  bo.tokens_per_batch = 2048;
  bo.bucket_window = 64;
  bo.seed = 5;
  bo.sample = Sampling::kClusters;
  SequenceBatches source(corpus, Split::kTrain, bo);
  std::map<int64_t, std::set<size_t>> chosen;  // cluster -> members chosen over the epochs
  std::map<size_t, int> times;                 // how often each protein was chosen
  const int kEpochs = 60;
  for (int64_t epoch = 0; epoch < kEpochs; ++epoch) {
    const std::vector<size_t> ids = visited(source, epoch);
    ASSERT_EQ(static_cast<int64_t>(ids.size()), train_clusters) << "epoch " << epoch;
    std::set<int64_t> clusters;
    for (size_t id : ids) {
      EXPECT_EQ(corpus.split(id), Split::kTrain);
      EXPECT_TRUE(clusters.insert(corpus.cluster(id)).second) << "cluster visited twice in epoch " << epoch;
      chosen[corpus.cluster(id)].insert(id);
      ++times[id];
    }
  }
  // Over 60 epochs every member of a cluster of 2-3 is chosen (each misses all 60 with probability < 3e-8),
  // and the choices are roughly uniform: a member of a pair is chosen in 30 +- 15 epochs.
  int pairs = 0;
  for (const auto& [c, ids] : members) {
    if (corpus.split(ids[0]) != Split::kTrain || ids.size() < 2 || ids.size() > 3) continue;
    EXPECT_EQ(chosen[c].size(), ids.size()) << "cluster " << c;
    if (ids.size() == 2) {
      ++pairs;
      EXPECT_NEAR(times[ids[0]], kEpochs / 2, 15) << "cluster " << c;
    }
  }
  EXPECT_GT(pairs, 3) << "the test needs clusters of two members";
  // A pure function of (seed, epoch): another source, and an in-memory corpus, give the same epoch.
  const Corpus in_memory = Corpus::load(dir.file("c.h5"), false, /*map=*/false);
  SequenceBatches again(in_memory, Split::kTrain, bo);
  EXPECT_EQ(visited(again, 7), visited(source, 7));
  bo.seed = 6;
  SequenceBatches other_seed(corpus, Split::kTrain, bo);
  EXPECT_NE(visited(other_seed, 7), visited(source, 7));

  // Concatenated batches: the stream, cut at <eos>, is one whole train protein of every cluster (found by
  // its residues), so its length changes by epoch.
  bo.seed = 5;
  ConcatBatches concat(corpus, Split::kTrain, bo);
  std::map<std::vector<Token>, std::set<int64_t>> clusters_of;  // residues -> clusters of train proteins
  for (size_t id = 0; id < corpus.size(); ++id)
    if (corpus.split(id) == Split::kTrain) clusters_of[corpus.residues(id)].insert(corpus.cluster(id));
  std::set<size_t> lengths;
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    std::vector<Token> stream;
    for (int64_t i = 0; i < concat.num_batches(epoch); ++i) {
      const Batch b = concat.batch(epoch, i);
      const at::Tensor real = b.tokens.masked_select(b.padding_mask);
      for (int64_t k = 0; k < real.numel(); ++k) stream.push_back(static_cast<Token>(real[k].item<int64_t>()));
    }
    std::set<int64_t> clusters;
    std::vector<Token> protein;
    size_t proteins = 0;
    for (Token t : stream) {
      if (t != Alphabet::kEos) {
        protein.push_back(t);
        continue;
      }
      ++proteins;
      const auto it = clusters_of.find(protein);
      ASSERT_NE(it, clusters_of.end()) << "not a train protein, epoch " << epoch;
      if (it->second.size() == 1) {
        EXPECT_TRUE(clusters.insert(*it->second.begin()).second) << "epoch " << epoch;
      }
      protein.clear();
    }
    EXPECT_TRUE(protein.empty()) << "the stream ends with <eos>";
    EXPECT_EQ(static_cast<int64_t>(proteins), train_clusters) << "epoch " << epoch;
    EXPECT_GT(clusters.size(), proteins * 9 / 10) << "proteins of distinct clusters (identical sequences aside)";
    lengths.insert(stream.size());
  }
  EXPECT_GT(lengths.size(), 1u);
}

TEST(ClusterSampling, UnlistedProteinsAndClustersAcrossSplitsAreSampled) {
  // Prepared with a cluster file that leaves 10 proteins out: each is a cluster of its own, visited every
  // epoch, and the epoch is one protein per cluster.
  TempDir dir;
  write_partial_tsv(dir.file("partial.tsv"));
  PrepareResult r = prepare_corpus(with_clusters("trembl_600.fasta.gz", dir.file("partial.tsv"), dir.file("c.h5")));
  const Corpus corpus = Corpus::load(dir.file("c.h5"), false);
  std::set<size_t> unlisted;  // cluster indices past the file's are the unlisted proteins'
  const auto listed = static_cast<int64_t>(corpus.cluster_indices()) - r.stats.unclustered;
  for (size_t i = 0; i < corpus.size(); ++i)
    if (corpus.cluster(i) >= listed && corpus.split(i) == Split::kTrain) unlisted.insert(i);
  ASSERT_GT(unlisted.size(), 3u);
  auto count = [](const std::vector<size_t>& m) { return static_cast<int64_t>(m.size()); };
  SplitOrder order(corpus, Split::kTrain, 3, true, 50, count, Sampling::kClusters);
  EXPECT_EQ(order.clusters(), r.stats.split_clusters[0]);
  for (int64_t epoch = 0; epoch < 5; ++epoch) {
    std::set<size_t> ids;
    std::set<int64_t> clusters;
    for (int64_t w = 0; w < order.windows(epoch); ++w)
      for (size_t id : *order.window(epoch, w).members) {
        ids.insert(id);
        EXPECT_TRUE(clusters.insert(corpus.cluster(id)).second);
      }
    EXPECT_EQ(static_cast<int64_t>(ids.size()), r.stats.split_clusters[0]);
    for (size_t id : unlisted) EXPECT_TRUE(ids.count(id)) << "unlisted protein " << id << ", epoch " << epoch;
  }
  // In memory, a cluster may straddle splits (prepare never writes one): its train member is visited only in
  // the epochs that choose it, and the batches of an epoch still cover what the epoch visits.
  const std::string seq = "MKTAYIAKQRQISFVKSHFSRQ";
  const Corpus mixed = Corpus::from_sequences({seq, seq + "A", seq + "AA", seq + "AAA", seq + "C", seq + "CC"},
                                              {Split::kTrain, Split::kValid, Split::kTrain, Split::kTrain,
                                               Split::kTrain, Split::kTrain},
                                              {0, 0, 1, 1, 2, 3});
  BatchOptions bo;
  bo.max_len = 64;
  bo.tokens_per_batch = 64;
  bo.bucket_window = 2;
  bo.sample = Sampling::kClusters;
  SequenceBatches source(mixed, Split::kTrain, bo);
  std::set<size_t> straddler;
  for (int64_t epoch = 0; epoch < 20; ++epoch) {
    size_t rows = 0;
    for (const auto& batch : source.plan(epoch)) {
      rows += batch.size();
      for (size_t id : batch)
        if (id == 0) straddler.insert(static_cast<size_t>(epoch));
    }
    EXPECT_GE(rows, 3u);  // clusters 1, 2 and 3 every epoch
    EXPECT_LE(rows, 4u);
  }
  EXPECT_GT(straddler.size(), 2u);
  EXPECT_LT(straddler.size(), 18u);
}

TEST(ClusterSampling, ACorpusWithoutClustersIsAClearError) {
  TempDir dir;
  PrepareOptions o = with_clusters("real_excerpt.fasta", "", dir.file("plain.h5"));
  prepare_corpus(o);
  const Corpus plain = Corpus::load(dir.file("plain.h5"), false);
  BatchOptions bo;
  bo.max_len = 256;
  bo.tokens_per_batch = 2048;
  bo.sample = Sampling::kClusters;
  std::string e;
  try {
    SequenceBatches source(plain, Split::kTrain, bo);
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find(dir.file("plain.h5") + ": data.sample: clusters needs a corpus with sequence clusters (prepared "
                                          "without --clusters"),
            std::string::npos)
      << e;
  // A corpus from before cluster sampling (a /cluster column, no ranks) says to prepare it again.
  prepare_corpus(with_clusters("real_excerpt.fasta", data_path(kTsv), dir.file("old.h5")));
  {
    h5::Handle f = h5::open_file(dir.file("old.h5"), /*write=*/true);
    ASSERT_GE(H5Ldelete(f, "cluster_rank", H5P_DEFAULT), 0);
  }
  const Corpus old = Corpus::load(dir.file("old.h5"), false);
  EXPECT_FALSE(old.has_clusters());
  EXPECT_NE(old.no_clusters().find("prepare it again"), std::string::npos) << old.no_clusters();
  EXPECT_EQ(parse_sampling("clusters"), Sampling::kClusters);
  EXPECT_THROW(parse_sampling("cluster"), Error);
}

TEST(ClusterSampling, TheNextEpochsTableIsBuiltInTheBackgroundAndEqualsOneBuiltOnDemand) {
  TempDir dir;
  prepare_corpus(with_clusters("trembl_600.fasta.gz", data_path(kTsv), dir.file("c.h5")));
  const Corpus corpus = Corpus::load(dir.file("c.h5"), false);
  auto count = [](const std::vector<size_t>& m) { return static_cast<int64_t>(m.size()); };
  for (Sampling sample : {Sampling::kProteins, Sampling::kClusters}) {
    SplitOrder ahead(corpus, Split::kTrain, 9, true, 50, count, sample);
    EXPECT_FALSE(ahead.ready(1));
    ahead.total(0);  // uses epoch 0: epoch 1's table is built on another thread
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!ahead.ready(1) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_TRUE(ahead.ready(1)) << "epoch 1's table was not built in the background";
    SplitOrder direct(corpus, Split::kTrain, 9, true, 50, count, sample);
    ASSERT_EQ(ahead.total(1), direct.total(1));
    for (int64_t w = 0; w < direct.windows(1); ++w)
      EXPECT_EQ(*ahead.window(1, w).members, *direct.window(1, w).members) << "window " << w;
    // A trainer one epoch behind its prefetch thread asks for epochs E+1 and E in turn: every epoch's table
    // is built once (the measure runs once per window and build), never again after an eviction, and no
    // call waits for a background build of a later epoch.
    std::atomic<int64_t> measured{0};
    {
      SplitOrder order(corpus, Split::kTrain, 9, true, 50,
                       [&](const std::vector<size_t>& m) {
                         ++measured;
                         return static_cast<int64_t>(m.size());
                       },
                       Sampling::kProteins);
      const int64_t windows = order.windows(0);
      for (int64_t epoch = 0; epoch <= 5; ++epoch)
        for (int k = 0; k < 50; ++k) {
          order.total(epoch + 1);  // the prefetch thread
          order.total(epoch);      // the trainer
        }
      const auto deadline2 = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (!order.ready(7) && std::chrono::steady_clock::now() < deadline2)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      EXPECT_EQ(measured.load(), 8 * windows) << "epochs 0-7 built once each";
    }
    // Unshuffled and unsampled, every epoch shares one table.
    SplitOrder fixed(corpus, Split::kTrain, 9, false, 50, count);
    fixed.total(0);
    EXPECT_TRUE(fixed.ready(3));
  }
}

TEST(ClusterSampling, TrainWithDataClustersSplitsByClusterAndResumesExactly) {
  // A sequence file with data.clusters: the run's cached corpus is split by cluster, the log gives the
  // cluster counts, and with data.sample: clusters an interrupted run resumes to the same losses.
  TempDir a, b;
  // Clusters of about three (the 50% clusters merged by threes), in 4,096-token batches of 128: an epoch
  // of ~130 train clusters is ~4-5 steps, so the run crosses several epochs before and after the interruption.
  TempDir tsv;
  {
    std::map<std::string, std::string> leader;  // representative -> the first representative of its group of 3
    std::vector<std::string> reps;
    const auto rows = tsv_rows(data_path(kTsv));
    for (const auto& [rep, member] : rows)
      if (rep == member) reps.push_back(rep);
    for (size_t k = 0; k < reps.size(); ++k) leader[reps[k]] = reps[k - k % 3];
    std::ofstream out(tsv.file("coarse.tsv"));
    for (const auto& [rep, member] : rows) out << leader.at(rep) << '\t' << member << '\n';
  }
  const std::vector<std::string> sets = {"data.train=" + data_path("trembl_600.fasta.gz"), "data.clusters=" + tsv.file("coarse.tsv"),
                                         "data.sample=clusters", "train.steps=30", "eval.every=0",
                                         "output.checkpoint_every=0", "data.max_len=128", "data.tokens_per_batch=4096"};
  TrainOptions o;
  o.progress_bar = false;
  auto config = [&](const TempDir& d) {
    std::vector<std::string> all = sets;
    all.push_back("output.dir=" + d.path());
    return load_config(project_root() + "/configs/tiny.yaml", all);
  };
  train(config(a), o);
  TrainOptions half = o;
  half.stop_after = 20;
  train(config(b), half);
  TrainOptions resume = o;
  resume.resume = "auto";
  train(config(b), resume);
  EXPECT_EQ(csv_column(a.file("metrics.csv"), 2), csv_column(b.file("metrics.csv"), 2));
  const Corpus cached = Corpus::load(a.file("corpus.h5"), false);
  EXPECT_TRUE(cached.has_clusters());
  // Where the data stream stands after 30 steps is the sampled source's (epochs of one protein per
  // cluster), not where sampling proteins would put it.
  RunConfig c = config(a);
  auto position_after = [&](int steps, Sampling sample) {
    DataConfig d = c.data;
    d.sample = sample;
    const auto source = training_batches(cached, d, c.runtime.seed);
    DataPosition p;
    for (int step = 0; step < steps; ++step) {  // one batch per step; an epoch ends when the next step starts
      if (p.index == source->num_batches(p.epoch)) p = DataPosition{p.epoch + 1, 0};
      ++p.index;
    }
    return p;
  };
  const DataPosition want = position_after(30, Sampling::kClusters);
  ASSERT_GE(want.epoch, 2) << "the run should cross two epochs";
  ASSERT_FALSE(want == position_after(30, Sampling::kProteins));
  Encoder model(c.model);
  EXPECT_EQ(load_checkpoint(checkpoint_path(a.path(), 30), model, nullptr, false).data, want);
  EXPECT_EQ(load_checkpoint(checkpoint_path(b.path(), 30), model, nullptr, false).data, want);
  const std::string log = read_text(a.file("train.log"));
  EXPECT_NE(log.find("split by sequence cluster: " + std::to_string(cached.stats().split_clusters[0]) + " train / "),
            std::string::npos) << log;
  EXPECT_NE(log.find("data.sample: clusters"), std::string::npos) << log;
  // data.clusters names a sequence file's split; with a prepared corpus it is an error.
  RunConfig wrong = config(a);
  wrong.data.train = a.file("corpus.h5");
  wrong.output.dir = a.file("other");
  try {
    train(wrong, o);
    ADD_FAILURE() << "data.clusters with a prepared corpus was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.clusters applies to a sequence file"), std::string::npos) << e.what();
  }
}
