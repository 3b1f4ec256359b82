// Data-parallel training: the sharded data stream (in process), the launcher environments, and real
// 2-process jobs on Gloo over loopback (the performer binary, as users run it).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "data/batches.h"
#include "data/loader.h"
#include "model/encoder.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/communicator.h"
#include "train/gradient_sync.h"
#include "train/world.h"
#include "util/error.h"
#include "util/process.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

namespace {

// Every batch of `epochs` epochs from a loader.
std::vector<Batch> drain(std::shared_ptr<const BatchSource> source, LoaderOptions lo) {
  DataLoader loader(std::move(source), lo);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

void expect_sharded_stream_matches(const std::shared_ptr<const BatchSource>& source, int64_t ranks) {
  LoaderOptions lo;
  lo.mask_seed = 5;
  lo.max_epochs = 2;
  lo.prefetch = 2;
  const std::vector<Batch> whole = drain(source, lo);
  ASSERT_FALSE(whole.empty());
  for (const Batch& b : whole) {  // a batch's shape is known without building it
    const BatchShape s = source->shape(b.epoch, b.index);
    EXPECT_EQ(s.rows, b.tokens.size(0));
    EXPECT_EQ(s.real_tokens, b.real_tokens);
  }
  std::vector<int> owners(whole.size(), 0);
  for (int64_t r = 0; r < ranks; ++r) {
    lo.shard_rank = r;
    lo.shard_count = ranks;
    const std::vector<Batch> mine = drain(source, lo);
    ASSERT_EQ(mine.size(), whole.size()) << "every rank walks the whole stream";
    for (size_t i = 0; i < whole.size(); ++i) {
      EXPECT_EQ(mine[i].epoch, whole[i].epoch);
      EXPECT_EQ(mine[i].index, whole[i].index);
      EXPECT_EQ(mine[i].real_tokens, whole[i].real_tokens);
      if (!mine[i].local) {
        EXPECT_FALSE(mine[i].tokens.defined());
        continue;
      }
      ++owners[i];
      EXPECT_TRUE(torch::equal(mine[i].inputs, whole[i].inputs)) << "rank " << r << " batch " << i;
      EXPECT_TRUE(torch::equal(mine[i].labels, whole[i].labels));
    }
  }
  for (size_t i = 0; i < whole.size(); ++i) EXPECT_EQ(owners[i], 1) << "batch " << i << " built by one rank only";
}

}  // namespace

TEST(DataParallel, ShardedLoadersTogetherGiveTheOneProcessStream) {
  Corpus corpus = excerpt_corpus();
  BatchOptions bo;
  bo.tokens_per_batch = 2048;
  bo.max_len = 256;
  bo.seed = 3;
  for (int64_t ranks : {2, 3}) {
    expect_sharded_stream_matches(std::make_shared<SequenceBatches>(corpus, Split::kTrain, bo), ranks);
    expect_sharded_stream_matches(std::make_shared<ConcatBatches>(corpus, Split::kTrain, bo), ranks);
  }
}

TEST(DataParallel, StepBatchesReachTheTokenBudgetAcrossEpochEnds) {
  Corpus corpus = excerpt_corpus();
  BatchOptions bo;
  bo.tokens_per_batch = 2048;
  bo.max_len = 256;
  SequenceBatches source(corpus, Split::kTrain, bo);
  const int64_t per_epoch = source.num_batches(0);
  DataPosition pos;
  int64_t batches = 0;
  for (int step = 0; step < 3 * per_epoch; ++step) {
    const auto plan = step_batches(source, pos, 5000);
    int64_t tokens = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
      EXPECT_LT(plan[i].index, source.num_batches(plan[i].epoch));
      tokens += source.shape(plan[i].epoch, plan[i].index).real_tokens;
      if (i + 1 < plan.size()) {
        EXPECT_LT(tokens, 5000) << "no batch beyond the budget";
      }
    }
    EXPECT_GE(tokens, 5000);
    batches += static_cast<int64_t>(plan.size());
    pos = DataPosition{plan.back().epoch, plan.back().index + 1};
  }
  EXPECT_GE(pos.epoch, 1);
  EXPECT_EQ(step_batches(source, DataPosition{0, per_epoch}, 0).front(), (DataPosition{1, 0}));
  EXPECT_EQ(step_batches(source, DataPosition{0, 0}, 0).size(), 1u);
  (void)batches;
}

TEST(DataParallel, WorldComesFromTorchrunOrSlurmEnvironment) {
  const std::vector<std::string> vars{"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                                      "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE",
                                      "SLURM_TASKS_PER_NODE", "SLURM_STEP_ID", "SLURM_STEPID", "SLURM_STEP_NUM_TASKS",
                                      "TORCHELASTIC_USE_AGENT_STORE", "PERFORMER_LAUNCHER"};
  auto clear = [&] {
    for (const auto& v : vars) ::unsetenv(v.c_str());
  };
  clear();
  EXPECT_FALSE(world_from_environment().distributed());
  ::setenv("RANK", "3", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  ::setenv("LOCAL_WORLD_SIZE", "2", 1);
  ::setenv("MASTER_ADDR", "10.0.0.1", 1);
  ::setenv("MASTER_PORT", "29500", 1);
  World w = world_from_environment();
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2);
  EXPECT_EQ(w.master_addr, "10.0.0.1");
  EXPECT_EQ(w.master_port, 29500);
  EXPECT_EQ(w.launcher, "torchrun");
  ::setenv("RANK", "4", 1);
  EXPECT_THROW(world_from_environment(), Error);
  ::setenv("RANK", "x", 1);
  try {
    world_from_environment();
    ADD_FAILURE() << "RANK=x accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("RANK='x'"), std::string::npos) << e.what();
  }
  clear();
  ::setenv("SLURM_PROCID", "0", 1);
  ::setenv("SLURM_NTASKS", "8", 1);
  EXPECT_FALSE(world_from_environment().distributed()) << "an sbatch script outside srun is one process";
  ::setenv("SLURM_STEP_ID", "0", 1);
  ::setenv("SLURM_PROCID", "5", 1);
  ::setenv("SLURM_LOCALID", "1", 1);
  ::setenv("SLURM_TASKS_PER_NODE", "2(x4)", 1);
  try {
    world_from_environment();
    ADD_FAILURE() << "SLURM without MASTER_ADDR accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MASTER_ADDR"), std::string::npos) << e.what();
  }
  ::setenv("MASTER_ADDR", "node01", 1);
  ::setenv("MASTER_PORT", "12345", 1);
  w = world_from_environment();
  EXPECT_EQ(w.launcher, "slurm");
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.size, 8);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2);
  clear();
}

TEST(DataParallel, BucketedGradientSumsStartDuringBackwardAndEqualTheSum) {
  // Two Gloo ranks as two threads of this process; small buckets so the model has several.
  const int port = free_local_port();
  std::vector<torch::nn::Sequential> models;
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(7);  // the same weights on both ranks
    models.push_back(torch::nn::Sequential(torch::nn::Linear(16, 32), torch::nn::ReLU(), torch::nn::Linear(32, 32),
                                           torch::nn::ReLU(), torch::nn::Linear(32, 4)));
  }
  const at::Tensor x0 = torch::randn({8, 16}), x1 = torch::randn({5, 16});
  auto loss = [](torch::nn::Sequential& m, const at::Tensor& x) { return m->forward(x).square().sum(); };
  // Reference: each rank's gradients alone, on a copy of the model.
  auto grads_of = [&](const at::Tensor& x) {
    torch::manual_seed(7);
    torch::nn::Sequential m(torch::nn::Linear(16, 32), torch::nn::ReLU(), torch::nn::Linear(32, 32), torch::nn::ReLU(),
                            torch::nn::Linear(32, 4));
    loss(m, x).backward();
    std::vector<at::Tensor> g;
    for (auto& p : m->parameters()) g.push_back(p.grad().clone());
    return g;
  };
  const auto g0 = grads_of(x0), g1 = grads_of(x1);
  std::vector<std::vector<at::Tensor>> both(2), only0(2);
  std::vector<int64_t> early(2), buckets(2);
  std::vector<std::string> errors(2);
  auto rank = [&](int r) {
    try {
      World w;
      w.rank = w.local_rank = r;
      w.size = w.local_size = 2;
      w.master_addr = "127.0.0.1";
      w.master_port = port;
      w.launcher = "test";
      Communicator comm(w, Backend::kGloo, c10::Device(c10::kCPU), 60);
      torch::nn::Sequential& m = models[static_cast<size_t>(r)];
      GradientSync sync(m->parameters(), comm, /*bucket_bytes=*/256);
      buckets[static_cast<size_t>(r)] = sync.buckets();
      // Step 1: both ranks backpropagate their own batch.
      sync.arm();
      loss(m, r == 0 ? x0 : x1).backward();
      sync.finish();
      early[static_cast<size_t>(r)] = sync.launched_during_backward();
      for (auto& p : m->parameters()) both[static_cast<size_t>(r)].push_back(p.grad().clone());
      // Step 2: rank 1 has no batch this step (its gradients are undefined): the sums are rank 0's.
      for (auto& p : m->parameters()) p.mutable_grad() = at::Tensor();
      if (r == 0) {
        sync.arm();
        loss(m, x0).backward();
      }
      sync.finish();
      for (auto& p : m->parameters()) only0[static_cast<size_t>(r)].push_back(p.grad().clone());
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(r)] = e.what();
    }
  };
  std::thread t0(rank, 0), t1(rank, 1);
  t0.join();
  t1.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  EXPECT_GE(buckets[0], 3);
  EXPECT_GE(early[0], 1) << "no bucket was launched by a hook during backward";
  for (int r = 0; r < 2; ++r)
    for (size_t k = 0; k < g0.size(); ++k) {
      EXPECT_TRUE(torch::allclose(both[static_cast<size_t>(r)][k], g0[k] + g1[k], 1e-5, 1e-6)) << "rank " << r << " param " << k;
      EXPECT_TRUE(torch::allclose(only0[static_cast<size_t>(r)][k], g0[k], 1e-5, 1e-6)) << "rank " << r << " param " << k;
    }
}

// ----------------------------------------------------------------------------------- 2-process jobs

namespace {

// The tiny config (dropout 0.1, feature redraws every 5 steps), one thread per process, gradient
// accumulation over several batches so both ranks have work every step.
std::string tiny_args(const std::string& dir, const std::string& extra = "") {
  return "train -c " + project_root() + "/configs/tiny.yaml --set output.dir=" + dir + " --set data.train=" +
         data_path("real_excerpt.fasta") +
         " --set train.tokens_per_step=4096 --set runtime.threads=1 --set runtime.timeout_s=60 "
         "--set eval.every=0 --set output.checkpoint_every=0 " + extra;
}

std::map<std::string, at::Tensor> parameters(const std::string& checkpoint) {
  RunConfig c = parse_config(checkpoint_config(checkpoint), checkpoint);
  Encoder m(c.model);
  load_checkpoint(checkpoint, m, nullptr, false);
  std::map<std::string, at::Tensor> out;
  for (auto& p : m->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

// The relative difference ||a - b|| / ||a|| of all the parameters of two checkpoints.
double parameter_difference(const std::string& a, const std::string& b) {
  auto pa = parameters(a), pb = parameters(b);
  double diff = 0, norm = 0;
  for (auto& [name, t] : pa) {
    const double d = (t - pb.at(name)).norm().item<double>(), n = t.norm().item<double>();
    diff += d * d;
    norm += n * n;
  }
  const double rel = std::sqrt(diff / norm);
  std::printf("relative parameter difference %s vs %s: %.3g\n", a.c_str(), b.c_str(), rel);
  return rel;
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

int rows(const std::string& csv) {
  std::ifstream in(csv);
  std::string line;
  int n = -1;
  while (std::getline(in, line)) ++n;
  return n;
}

// Two ranks started by hand, as torchrun would, each with its output in <dir>.rank<r>.txt.
struct Job {
  std::vector<int> pids;
  std::string out_prefix;
};
Job start_ranks(const std::string& args, const std::string& out_prefix) {
  Job j{{}, out_prefix};
  const std::string port = std::to_string(free_local_port());
  for (int r = 0; r < 2; ++r)
    j.pids.push_back(spawn_process({"/bin/bash", "-c", "exec " + std::string(PERFORMER_BINARY) + " " + args + " > " +
                                                           out_prefix + std::to_string(r) + ".txt 2>&1"},
                                   {"RANK=" + std::to_string(r), "LOCAL_RANK=" + std::to_string(r), "WORLD_SIZE=2",
                                    "LOCAL_WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port}));
  return j;
}
}  // namespace

namespace {

// The largest relative difference of the per-step losses of two runs.
double loss_difference(const std::string& a, const std::string& b) {
  const auto la = csv_column(a, 2), lb = csv_column(b, 2);
  if (la.size() != lb.size()) return 1.0;
  double worst = 0;
  for (size_t i = 0; i < la.size(); ++i) worst = std::max(worst, std::abs(la[i] - lb[i]) / std::abs(la[i]));
  return worst;
}

}  // namespace

TEST(DataParallel, TwoRanksTrainAsOneProcessAndResumeAcrossWorldSizes) {
  TempDir d;
  const std::string one = d.file("one"), threads = d.file("threads"), two = d.file("two"), two_one = d.file("two_one"),
                    one_two = d.file("one_two");
  const std::string steps = "--set train.steps=20 --set train.lr=5e-4";
  CliRun a = run_performer(tiny_args(one, steps));
  ASSERT_EQ(a.status, 0) << a.out;
  // The float noise of this machine, measured here: the same single process with 2 threads instead of 1
  // adds its sums in another order, as data-parallel ranks do (their micro-batch gradients are summed per
  // rank, then across ranks), and AdamW's normalization carries such rounding into the parameters. The
  // bound is 20 times it, with a floor of 20 steps' worth of float32 epsilon (2.4e-6) for a machine whose
  // thread count changes nothing. Measured (relative parameter difference after 20 steps): AMD EPYC with
  // 1.13, threads below the floor and 2 ranks 2.4e-8; the same with 2.11, threads 1.3e-5 and 2 ranks
  // 1.3e-6; an Intel Xeon with AMX on 2.11 gave 1.3e-5 for 2 ranks, which a fixed 1e-5 refused. For scale:
  // a learning rate 1% off moves the parameters by 5.2e-4, a mask rate of 0.151 for 0.15 by 8.8e-3.
  CliRun t = run_performer(tiny_args(threads, steps + " --set runtime.threads=2"));
  ASSERT_EQ(t.status, 0) << t.out;
  const double floor = 20 * 1.19e-7;
  const double param_noise = std::max(parameter_difference(checkpoint_path(one, 20), checkpoint_path(threads, 20)), floor);
  const double loss_noise = std::max(loss_difference(one + "/metrics.csv", threads + "/metrics.csv"), floor);
  const double param_bound = 20 * param_noise, loss_bound = 20 * loss_noise;
  std::printf("float noise (1 vs 2 threads): parameters %.3g, losses %.3g; bounds %.3g and %.3g\n", param_noise, loss_noise,
              param_bound, loss_bound);
  ASSERT_LT(param_bound, 1e-2) << "the two one-process runs themselves diverge";
  CliRun b = run_performer(tiny_args(two, steps) + " --nproc 2");
  ASSERT_EQ(b.status, 0) << b.out;
  EXPECT_NE(b.out.find("data-parallel: 2 ranks"), std::string::npos) << b.out;
  // The same losses, step by step, and the same parameters after 20 steps, within the measured noise.
  EXPECT_LE(loss_difference(one + "/metrics.csv", two + "/metrics.csv"), loss_bound);
  EXPECT_EQ(csv_column(one + "/metrics.csv", 1), csv_column(two + "/metrics.csv", 1)) << "tokens seen per step";
  EXPECT_LE(parameter_difference(checkpoint_path(one, 20), checkpoint_path(two, 20)), param_bound);
  EXPECT_EQ(read_text(one + "/eval.csv").substr(0, 40), read_text(two + "/eval.csv").substr(0, 40));
  // Rank 0 alone wrote: the run folder holds what a one-process run's holds.
  EXPECT_EQ(files_in(one), files_in(two));
  // 2 ranks -> checkpoint at step 10 -> 1 rank, and 1 -> 2: both continue the same sample stream.
  CliRun c1 = run_performer(tiny_args(two_one, steps) + " --nproc 2 --stop-after 10");
  ASSERT_EQ(c1.status, 0) << c1.out;
  CliRun c2 = run_performer(tiny_args(two_one, steps) + " --resume auto");
  ASSERT_EQ(c2.status, 0) << c2.out;
  CliRun e1 = run_performer(tiny_args(one_two, steps) + " --stop-after 10");
  ASSERT_EQ(e1.status, 0) << e1.out;
  CliRun e2 = run_performer(tiny_args(one_two, steps) + " --nproc 2 --resume auto");
  ASSERT_EQ(e2.status, 0) << e2.out;
  EXPECT_NE(e2.out.find("resumed from"), std::string::npos) << e2.out;
  for (const std::string& run : {two_one, one_two}) {
    EXPECT_LE(loss_difference(one + "/metrics.csv", run + "/metrics.csv"), loss_bound) << run;
    EXPECT_LE(parameter_difference(checkpoint_path(one, 20), checkpoint_path(run, 20)), param_bound) << run;
  }
}

TEST(DataParallel, AKilledRankMakesTheOtherExitWithAMessageNamingIt) {
  TempDir d;
  const std::string run = d.file("run");
  Job j = start_ranks(tiny_args(run, "--set train.steps=100000"), d.file("rank"));
  ASSERT_TRUE(wait_until([&] { return rows(run + "/metrics.csv") >= 3; }, 120)) << read_text(d.file("rank0.txt"));
  ::kill(j.pids[1], SIGKILL);
  const auto t0 = std::chrono::steady_clock::now();
  const int status = wait_for(j.pids[0], 60);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  wait_for(j.pids[1], 5);
  const std::string out = read_text(d.file("rank0.txt"));
  EXPECT_NE(status, -1) << "rank 0 still running 60 s after rank 1 was killed";
  EXPECT_NE(status, 0);
  EXPECT_LT(took, 60);
  EXPECT_NE(out.find("error: rank 0 of 2:"), std::string::npos) << out;
  EXPECT_NE(out.find("rank 1 did not answer"), std::string::npos) << out;
}

TEST(DataParallel, SigtermToOneRankStopsBothAtOneStepWithOneCheckpoint) {
  TempDir d;
  const std::string run = d.file("run");
  Job j = start_ranks(tiny_args(run, "--set train.steps=100000"), d.file("rank"));
  ASSERT_TRUE(wait_until([&] { return rows(run + "/metrics.csv") >= 3; }, 120)) << read_text(d.file("rank0.txt"));
  ::kill(j.pids[1], SIGTERM);
  EXPECT_EQ(wait_for(j.pids[0], 60), 130) << read_text(d.file("rank0.txt"));
  EXPECT_EQ(wait_for(j.pids[1], 60), 130) << read_text(d.file("rank1.txt"));
  std::vector<std::string> checkpoints;
  for (const std::string& f : files_in(run))
    if (f.rfind("ckpt-", 0) == 0) checkpoints.push_back(f);
  ASSERT_EQ(checkpoints.size(), 1u);
  const int stopped_at = rows(run + "/metrics.csv");
  EXPECT_EQ(checkpoints[0], fs::path(checkpoint_path(run, stopped_at)).filename().string());
  // Both ranks name the same step.
  const std::string says = "interrupted at step " + std::to_string(stopped_at);
  EXPECT_NE(read_text(d.file("rank0.txt")).find(says), std::string::npos) << read_text(d.file("rank0.txt"));
  // --resume auto continues it (here to 3 more steps, with 2 ranks again).
  CliRun r = run_performer(tiny_args(run, "--set train.steps=" + std::to_string(stopped_at + 3)) + " --nproc 2 --resume auto");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(rows(run + "/metrics.csv"), stopped_at + 3);
}

TEST(DataParallel, NprocInsideALaunchedRankIsRefused) {
  CliRun r = run_command("RANK=0 WORLD_SIZE=1 " + std::string(PERFORMER_BINARY) + " " + tiny_args("/tmp/never") +
                         " --nproc 2 2>&1");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("already is a rank"), std::string::npos) << r.out;
}
