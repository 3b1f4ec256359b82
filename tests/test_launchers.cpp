// Data-parallel jobs on the real engines users run them with: a real SLURM cluster of one node
// (scripts/slurm-cluster.sh: sbatch, requeue, scancel, a step laid out unlike its job), torchrun's elastic
// agent (a rank killed mid-run, the group restarted, the run resumed from its checkpoint) and two hosts
// over a network (two network namespaces joined by a veth pair, one rank in each; then the link cut
// mid-run). The performer binary as users run it; every wait bounded. Skipped, with one line, where SLURM
// cannot be started (not root), torchrun (the 2.x toolchain's Python) or network namespaces are missing.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "test_runs.h"
#include "test_util.h"
#include "util/process.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

namespace {

// torchrun beside the 2.x toolchain's Python (PERFORMER_TEST_PYTHON), or "".
std::string torchrun() {
  const char* py = std::getenv("PERFORMER_TEST_PYTHON");
  if (py == nullptr || *py == '\0') return "";
  const fs::path t = fs::path(py).parent_path() / "torchrun";
  return fs::exists(t) ? t.string() : "";
}

// Every process below `pid` whose command is the performer binary.
std::vector<int> performer_processes_below(int pid) {
  std::vector<int> out, todo{pid};
  while (!todo.empty()) {
    const int p = todo.back();
    todo.pop_back();
    for (int c : children_of(p)) {
      todo.push_back(c);
      if (read_text("/proc/" + std::to_string(c) + "/comm").rfind("performer", 0) == 0) out.push_back(c);
    }
  }
  return out;
}

// A shell command line in the background, its output in `out`.
int start(const std::string& command, const std::string& out) {
  return spawn_process({"/bin/bash", "-c", "exec " + command + " > " + out + " 2>&1"}, {});
}

const std::string kBinary = PERFORMER_BINARY;

}  // namespace

TEST(Torchrun, ARankKilledMidRunIsRestartedByTheAgentAndTheRunEndsAsAnUninterruptedOne) {
  const std::string tr = torchrun();
  if (tr.empty()) GTEST_SKIP() << "no torchrun (PERFORMER_TEST_PYTHON: scripts/setup.sh sets it for TORCH=pip)";
  TempDir d;
  const std::string ref = d.file("ref"), run = d.file("run"), out = d.file("torchrun.txt");
  const std::string steps = "--set train.steps=30 --set output.checkpoint_every=5 --set output.keep_last=10";
  CliRun r = run_performer(tiny_args(ref, steps) + " --nproc 2");
  ASSERT_EQ(r.status, 0) << r.out;
  // The same job under torchrun's agent, which may restart the group once.
  const auto t0 = Clock::now();
  ChildGuard guard;
  const int agent = guard.hold(start(tr + " --standalone --nproc-per-node 2 --max-restarts 1 --monitor-interval 0.2 --no-python " +
                              kBinary + " " + tiny_args(run, steps) + " --resume auto", out));
  ASSERT_TRUE(wait_until([&] { return rows(run + "/metrics.csv") >= 12; }, 180)) << read_text(out);
  const std::vector<int> ranks = performer_processes_below(agent);
  ASSERT_EQ(ranks.size(), 2u) << read_text(out);
  ::kill(ranks[1], SIGKILL);
  const int status = wait_for(agent, 300);
  const std::string said = read_text(out);
  std::printf("torchrun with one restart: %.1f s\n", seconds_since(t0));
  ASSERT_EQ(status, 0) << said;
  // From the last checkpoint before the kill (step 10, or a later one on a slow machine).
  const size_t resumed = said.find("resumed from " + run + "/ckpt-");
  ASSERT_NE(resumed, std::string::npos) << said;
  const int from = std::stoi(said.substr(resumed + std::string("resumed from " + run + "/ckpt-").size(), 9));
  EXPECT_GE(from, 10);
  EXPECT_EQ(from % 5, 0);
  std::printf("the restarted group resumed from step %d\n", from);
  // Exact resume: the run ends bit for bit where the uninterrupted one ends, with the same log of losses.
  EXPECT_EQ(parameter_difference(checkpoint_path(ref, 30), checkpoint_path(run, 30)), 0.0);
  EXPECT_EQ(loss_difference(ref + "/metrics.csv", run + "/metrics.csv"), 0.0);
}

namespace {

// Two hosts: network namespaces pf<a|b><tag>, joined by a veth pair with addresses 10.213.<k>.1 and .2
// (their own, made here and removed after).
class TwoHosts {
 public:
  TwoHosts() {
    const std::string tag = std::to_string(::getpid() % 100000);
    const std::string k = std::to_string(::getpid() % 250);
    for (int h = 0; h < 2; ++h) {
      ns_[h] = std::string(h == 0 ? "pfa" : "pfb") + tag;
      dev_[h] = std::string(h == 0 ? "pfva" : "pfvb") + tag;
      addr_[h] = "10.213." + k + "." + std::to_string(h + 1);
    }
    std::string script = "set -e; ip netns add " + ns_[0] + "; ip netns add " + ns_[1] + "; ip link add " + dev_[0] +
                         " type veth peer name " + dev_[1] + ";";
    for (int h = 0; h < 2; ++h)
      script += " ip link set " + dev_[h] + " netns " + ns_[h] + "; ip -n " + ns_[h] + " addr add " + addr_[h] +
                "/24 dev " + dev_[h] + "; ip -n " + ns_[h] + " link set " + dev_[h] + " up; ip -n " + ns_[h] +
                " link set lo up;";
    const CliRun r = run_command("(" + script + ") 2>&1");
    ok_ = r.status == 0;
    why_ = r.out;
  }
  ~TwoHosts() {  // what still runs inside is killed first
    for (int h = 0; h < 2; ++h)
      run_command("ip netns pids " + ns_[h] + " 2>/dev/null | xargs -r kill -9; ip netns del " + ns_[h] + " 2>/dev/null");
  }
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  const std::string& address(int h) const { return addr_[h]; }
  const std::string& device(int h) const { return dev_[h]; }
  // `command` on host h.
  std::string on(int h, const std::string& command) const { return "ip netns exec " + ns_[h] + " " + command; }
  void cut() const { run_command("ip -n " + ns_[0] + " link set " + dev_[0] + " down"); }

 private:
  std::string ns_[2], dev_[2], addr_[2], why_;
  bool ok_ = false;
};

// Skips the test where network namespaces cannot be made (not root, no iproute2, no kernel support).
#define REQUIRE_TWO_HOSTS(hosts)                                                                                \
  if (::geteuid() != 0) GTEST_SKIP() << "network namespaces need root";                                         \
  if (!(hosts).ok()) GTEST_SKIP() << "cannot make two network namespaces joined by a veth pair: " << (hosts).why()

// Rank r of 2 by hand on host r, as a multi-node launcher would start it.
std::string rank_on_host(const TwoHosts& hosts, int r, const std::string& args) {
  return hosts.on(r, "env RANK=" + std::to_string(r) + " WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=" +
                         hosts.address(0) + " MASTER_PORT=29500 GLOO_SOCKET_IFNAME=" + hosts.device(r) + " " + kBinary +
                         " " + args);
}

}  // namespace

namespace {
// The one-process run of the tiny config for 20 steps, and how far a run may differ from it (the float
// noise of this machine, measured: test_runs.h).
struct Reference {
  std::string one;
  Bounds bound;
};
Reference one_process_reference(const TempDir& d, const std::string& steps) {
  const std::string one = d.file("one"), threads = d.file("threads");
  CliRun a = run_performer(tiny_args(one, steps));
  EXPECT_EQ(a.status, 0) << a.out;
  CliRun t = run_performer(tiny_args(threads, steps + " --set runtime.threads=2"));
  EXPECT_EQ(t.status, 0) << t.out;
  return {one, noise_bounds(one, threads, 20)};
}
const std::string kSteps = "--set train.steps=20 --set train.lr=5e-4";

// The run in `run` is the reference's: every logged loss and the parameters after 20 steps, within its bound.
void expect_as_one_process(const Reference& ref, const std::string& run) {
  EXPECT_LE(loss_difference(ref.one + "/metrics.csv", run + "/metrics.csv"), ref.bound.losses);
  EXPECT_LE(parameter_difference(checkpoint_path(ref.one, 20), checkpoint_path(run, 20)), ref.bound.parameters);
}
}  // namespace

TEST(TwoHosts, OneRankOnEachHostStartedByHandTrainsAsOneProcess) {
  TwoHosts hosts;
  REQUIRE_TWO_HOSTS(hosts);
  TempDir d;
  const Reference ref = one_process_reference(d, kSteps);
  ASSERT_FALSE(HasFailure());
  // MASTER_ADDR is host 0's veth address; each rank's Gloo on its own host's interface.
  const std::string run = d.file("manual");
  const auto t0 = Clock::now();
  ChildGuard guard;
  const int r0 = guard.hold(start(rank_on_host(hosts, 0, tiny_args(run, kSteps)), d.file("m0.txt")));
  const int r1 = guard.hold(start(rank_on_host(hosts, 1, tiny_args(run, kSteps)), d.file("m1.txt")));
  ASSERT_EQ(wait_for(r0, 180), 0) << read_text(d.file("m0.txt"));
  ASSERT_EQ(wait_for(r1, 60), 0) << read_text(d.file("m1.txt"));
  std::printf("two hosts by hand, 20 steps: %.1f s\n", seconds_since(t0));
  expect_as_one_process(ref, run);
}

TEST(TwoHosts, TorchrunOnEachHostMeetsThroughTheC10dRendezvousAndTrainsAsOneProcess) {
  const std::string tr = torchrun();
  if (tr.empty()) GTEST_SKIP() << "no torchrun (PERFORMER_TEST_PYTHON: scripts/setup.sh sets it for TORCH=pip)";
  TwoHosts hosts;
  REQUIRE_TWO_HOSTS(hosts);
  TempDir d;
  const Reference ref = one_process_reference(d, kSteps);
  ASSERT_FALSE(HasFailure());
  // The two namespaces share one host name, so torchrun is told what it would otherwise find from it on
  // a real cluster: which agent hosts the rendezvous store (is_host) and each host's address
  // (--local-addr, which becomes the workers' MASTER_ADDR).
  const std::string run = d.file("elastic");
  const auto t0 = Clock::now();
  std::vector<int> agents;
  ChildGuard guard;
  for (int h = 0; h < 2; ++h)
    agents.push_back(guard.hold(start(hosts.on(h, "env GLOO_SOCKET_IFNAME=" + hosts.device(h) + " " + tr +
                                           " --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint " +
                                           hosts.address(0) + ":29400 --rdzv-conf is_host=" + (h == 0 ? "1" : "0") +
                                           " --local-addr " + hosts.address(h) +
                                           " --rdzv-id two-hosts --max-restarts 0 --no-python " + kBinary + " " +
                                           tiny_args(run, kSteps)),
                           d.file("e" + std::to_string(h) + ".txt"))));
  EXPECT_EQ(wait_for(agents[0], 240), 0) << read_text(d.file("e0.txt"));
  EXPECT_EQ(wait_for(agents[1], 60), 0) << read_text(d.file("e1.txt"));
  std::printf("two hosts under torchrun (c10d rendezvous), 20 steps: %.1f s\n", seconds_since(t0));
  EXPECT_NE(read_text(d.file("e0.txt")).find("data-parallel: 2 ranks (torchrun)"), std::string::npos) << read_text(d.file("e0.txt"));
  expect_as_one_process(ref, run);
}

TEST(TwoHosts, ACutLinkEndsBothRanksWithinTheTimeoutNamingThePeerAndTheRunResumes) {
  TwoHosts hosts;
  REQUIRE_TWO_HOSTS(hosts);
  TempDir d;
  const std::string run = d.file("run");
  const double timeout_s = 10;
  const std::string args = tiny_args(run, "--set train.steps=100000 --set output.checkpoint_every=3 --set runtime.timeout_s=" +
                                              std::to_string(static_cast<int>(timeout_s)));
  ChildGuard guard;
  const int r0 = guard.hold(start(rank_on_host(hosts, 0, args), d.file("r0.txt")));
  const int r1 = guard.hold(start(rank_on_host(hosts, 1, args), d.file("r1.txt")));
  ASSERT_TRUE(wait_until([&] { return rows(run + "/metrics.csv") >= 5; }, 180)) << read_text(d.file("r0.txt"));
  hosts.cut();
  const auto t0 = Clock::now();
  const int s0 = wait_for(r0, 3 * timeout_s + 30), s1 = wait_for(r1, 3 * timeout_s + 30);
  const double took = seconds_since(t0);
  const std::string o0 = read_text(d.file("r0.txt")), o1 = read_text(d.file("r1.txt"));
  std::printf("link cut: both ranks ended after %.1f s (runtime.timeout_s %g)\n", took, timeout_s);
  EXPECT_EQ(s0, 1) << o0;
  EXPECT_EQ(s1, 1) << o1;
  EXPECT_LT(took, timeout_s + 15) << "runtime.timeout_s, then a few seconds for the ranks to name each other";
  EXPECT_NE(o0.find("error: rank 0 of 2:"), std::string::npos) << o0;
  EXPECT_NE(o0.find("rank 1 did not answer"), std::string::npos) << o0;
  EXPECT_NE(o1.find("error: rank 1 of 2:"), std::string::npos) << o1;
  // Rank 1 cannot reach the store on rank 0's host: it names rank 0 at the store's deadline.
  EXPECT_NE(o1.find("rank 0, which hosts the rendezvous store, did not answer within 7 s"), std::string::npos) << o1;
  for (const std::string* o : {&o0, &o1}) {  // one error line each
    size_t lines = 0;
    for (size_t at = o->find("error: "); at != std::string::npos; at = o->find("error: ", at + 1))
      lines += at == 0 || (*o)[at - 1] == '\n';
    EXPECT_EQ(lines, 1u) << *o;
  }
  // Nothing was lost: --resume auto continues from the last checkpoint (here on one host, 2 ranks).
  const int done = rows(run + "/metrics.csv");
  CliRun r = run_performer(tiny_args(run, "--set output.checkpoint_every=3 --set train.steps=" + std::to_string(done + 3)) +
                           " --nproc 2 --resume auto");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from"), std::string::npos) << r.out;
  EXPECT_EQ(rows(run + "/metrics.csv"), done + 3);
}

// ------------------------------------------------------------------------------ a real SLURM cluster

namespace {

// The one-node cluster of scripts/slurm-cluster.sh, started for one test and stopped after it. The tests
// that use it take turns (a lock file): ctest runs tests side by side, and they share the daemons' ports.
class SlurmCluster {
 public:
  SlurmCluster() {
    lock_ = ::open("/var/tmp/performer-slurm.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_ >= 0) ::flock(lock_, LOCK_EX);
    const CliRun r = run_command("bash " + project_root() + "/scripts/slurm-cluster.sh start 2>&1");
    ok_ = r.status == 0;
    why_ = r.out;
  }
  ~SlurmCluster() {
    run_command("bash " + project_root() + "/scripts/slurm-cluster.sh stop >/dev/null 2>&1");
    if (lock_ >= 0) ::close(lock_);
  }
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  // A SLURM command line against this cluster.
  static std::string command(const std::string& line) {
    return "SLURM_CONF=/var/tmp/performer-slurm/slurm.conf " + line;
  }
  // sbatch of scripts/slurm-train.sh (the tiny config) with `options`; the job id.
  static std::string submit(const std::string& options, const std::string& output, const std::string& sets) {
    const CliRun r = run_command(command("sbatch --parsable " + options + " --output " + output +
                                         " --open-mode append --export ALL,PERFORMER_BIN=" + kBinary + " " +
                                         project_root() + "/scripts/slurm-train.sh " + tiny_config() + " " + sets + " 2>&1"));
    std::string id = r.out.substr(0, r.out.find_first_of(";\n"));
    return r.status == 0 ? id : "";
  }
  static std::string state(const std::string& job) {
    std::string s = run_command(command("squeue -h -t all -j " + job + " -o %T 2>/dev/null")).out;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }
  // Waits for the job to reach one of `states` ("COMPLETED CANCELLED ..."); whether it did.
  static bool wait_state(const std::string& job, const std::string& states, double seconds) {
    return wait_until([&] {
      const std::string s = state(job);
      return !s.empty() && (" " + states + " ").find(" " + s + " ") != std::string::npos;
    }, seconds);
  }

 private:
  int lock_ = -1;
  bool ok_ = false;
  std::string why_;
};

#define REQUIRE_SLURM(cluster)                                                      \
  if (::geteuid() != 0) GTEST_SKIP() << "the SLURM daemons need root";              \
  if (!(cluster).ok()) GTEST_SKIP() << "cannot start SLURM (scripts/slurm-cluster.sh start): " << (cluster).why()

const std::string kEnded = "COMPLETED CANCELLED FAILED TIMEOUT NODE_FAIL OUT_OF_MEMORY BOOT_FAIL DEADLINE PREEMPTED";

}  // namespace

TEST(SlurmCluster, SbatchOfTwoTasksTrainsAsOneProcess) {
  SlurmCluster cluster;
  REQUIRE_SLURM(cluster);
  TempDir d;
  const std::string two = d.file("two"), out = d.file("slurm.txt");
  const Reference ref = one_process_reference(d, kSteps);
  ASSERT_FALSE(HasFailure());
  const auto t0 = Clock::now();
  const std::string job = SlurmCluster::submit("--ntasks 2 --ntasks-per-node 2", out, tiny_sets(two, kSteps));
  ASSERT_FALSE(job.empty());
  ASSERT_TRUE(SlurmCluster::wait_state(job, kEnded, 180)) << read_text(out);
  std::printf("sbatch, 2 tasks, 20 steps: %.1f s from submission to the end\n", seconds_since(t0));
  EXPECT_EQ(SlurmCluster::state(job), "COMPLETED") << read_text(out);
  EXPECT_NE(read_text(out).find("data-parallel: 2 ranks (slurm)"), std::string::npos) << read_text(out);
  expect_as_one_process(ref, two);
}

TEST(SlurmCluster, ARequeuedJobResumesByItselfToTheUninterruptedResultAndScancelLeavesAResumableRun) {
  SlurmCluster cluster;
  REQUIRE_SLURM(cluster);
  TempDir d;
  const std::string ref = d.file("ref"), run = d.file("run"), out = d.file("slurm.txt");
  // Long enough (about 6 s on 2 cores) that the requeue lands mid-run even on a loaded machine.
  const std::string steps = "--set train.steps=200 --set output.checkpoint_every=5 --set output.keep_last=4";
  CliRun r = run_performer(tiny_args(ref, steps) + " --nproc 2");
  ASSERT_EQ(r.status, 0) << r.out;
  // Requeued mid-run: the tasks get SIGTERM, agree on a step and checkpoint; the job runs again and
  // resumes from that checkpoint by itself.
  auto t0 = Clock::now();
  const std::string job = SlurmCluster::submit("--requeue --ntasks 2 --ntasks-per-node 2", out, tiny_sets(run, steps));
  ASSERT_FALSE(job.empty());
  ASSERT_TRUE(wait_until([&] { return rows(run + "/metrics.csv") >= 12; }, 180)) << read_text(out);
  ASSERT_EQ(run_command(SlurmCluster::command("scontrol requeue " + job + " 2>&1")).status, 0);
  ASSERT_TRUE(SlurmCluster::wait_state(job, "PENDING", 90)) << read_text(out);
  // SLURM holds a requeued job back for a while (its begin time); the test lets it start sooner, once
  // the first run's steps have ended and a few seconds more: a relaunch while slurmd still holds the
  // first run's revoked credential is refused ("Job credential revoked": the job FAILED, seen once in CI).
  ASSERT_TRUE(wait_until([&] {
    return run_command(SlurmCluster::command("squeue -h -s -j " + job + " 2>/dev/null")).out.empty() &&
           read_text(out).find("Exited with exit code") != std::string::npos;
  }, 90)) << read_text(out);
  std::this_thread::sleep_for(std::chrono::seconds(5));
  run_command(SlurmCluster::command("scontrol update jobid=" + job + " StartTime=now 2>&1"));
  ASSERT_TRUE(SlurmCluster::wait_state(job, kEnded, 240)) << read_text(out);
  std::printf("sbatch requeued once, 200 steps: %.1f s from submission to the end\n", seconds_since(t0));
  const std::string said = read_text(out);
  EXPECT_EQ(SlurmCluster::state(job), "COMPLETED") << said;
  EXPECT_NE(said.find("interrupted at step"), std::string::npos) << said;
  EXPECT_NE(said.find("requeued (restart 1): resuming from the last checkpoint"), std::string::npos) << said;
  EXPECT_NE(said.find("resumed from"), std::string::npos) << said;
  EXPECT_EQ(parameter_difference(checkpoint_path(ref, 200), checkpoint_path(run, 200)), 0.0);
  EXPECT_EQ(loss_difference(ref + "/metrics.csv", run + "/metrics.csv"), 0.0);
  // scancel: the tasks checkpoint as they stop; the run continues with --resume auto.
  const std::string cancelled = d.file("cancelled"), out2 = d.file("slurm2.txt");
  t0 = Clock::now();
  const std::string job2 = SlurmCluster::submit("--ntasks 2 --ntasks-per-node 2", out2,
                                                tiny_sets(cancelled, "--set train.steps=100000"));
  ASSERT_FALSE(job2.empty());
  ASSERT_TRUE(wait_until([&] { return rows(cancelled + "/metrics.csv") >= 5; }, 180)) << read_text(out2);
  ASSERT_EQ(run_command(SlurmCluster::command("scancel " + job2 + " 2>&1")).status, 0);
  ASSERT_TRUE(SlurmCluster::wait_state(job2, kEnded, 90)) << read_text(out2);
  std::printf("scancel: the job ended %.1f s after submission\n", seconds_since(t0));
  EXPECT_NE(read_text(out2).find("interrupted at step"), std::string::npos) << read_text(out2);
  const int done = rows(cancelled + "/metrics.csv");
  CliRun c = run_performer("train --config " + cancelled + "/config.yaml --resume auto --set train.steps=" +
                           std::to_string(done + 3) + " --nproc 2");
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_NE(c.out.find("resumed from " + checkpoint_path(cancelled, done)), std::string::npos) << c.out;
  EXPECT_EQ(rows(cancelled + "/metrics.csv"), done + 3);
}

TEST(SlurmCluster, AStepLaidOutUnlikeItsJobTakesItsOwnLayout) {
  // The job holds 1 task (with 2 CPUs); its step runs 2 tasks on the node (--overcommit). The ranks'
  // layout is the step's: 2 tasks here, local ranks 0 and 1 (the job's "1 task per node" would refuse
  // local rank 1).
  SlurmCluster cluster;
  REQUIRE_SLURM(cluster);
  TempDir d;
  const std::string run = d.file("run"), out = d.file("slurm.txt");
  const std::string line = "export MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(free_local_port()) +
                           "; exec srun --ntasks 2 --overcommit " + kBinary + " " +
                           tiny_args(run, "--set train.steps=6");
  const CliRun r = run_command(SlurmCluster::command("sbatch --parsable --ntasks 1 --cpus-per-task 2 --output " + out +
                                                     " --wrap '" + line + "' 2>&1"));
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string job = r.out.substr(0, r.out.find_first_of(";\n"));
  ASSERT_TRUE(SlurmCluster::wait_state(job, kEnded, 180)) << read_text(out);
  EXPECT_EQ(SlurmCluster::state(job), "COMPLETED") << read_text(out);
  EXPECT_NE(read_text(out).find("data-parallel: 2 ranks (slurm)"), std::string::npos) << read_text(out);
  EXPECT_EQ(rows(run + "/metrics.csv"), 6);
}
