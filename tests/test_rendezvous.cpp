// The start of a data-parallel job (train/rendezvous.h) and the local launcher (`train --nproc`): no rank
// hangs past runtime.timeout_s or ignores a stop signal, a missing rank is named, a rank never joins
// another job, and a rank killed by a signal stops the job at once. Real processes of the binary, short
// timeouts, every wait bounded.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "test_util.h"
#include "util/process.h"

using namespace performer;
using namespace performer::testing;
namespace fs = std::filesystem;

namespace {

std::string train_args(const std::string& dir, double timeout_s, const std::string& extra = "") {
  return "train -c " + project_root() + "/configs/tiny.yaml --set output.dir=" + dir + " --set data.train=" +
         data_path("real_excerpt.fasta") + " --set train.tokens_per_step=4096 --set runtime.threads=1" +
         " --set runtime.timeout_s=" + std::to_string(timeout_s) + " --set eval.every=0 --set output.checkpoint_every=0 " +
         extra;
}

// One rank started by hand (as torchrun would), its output in `out`.
int start_rank(int rank, int size, int port, const std::string& args, const std::string& out) {
  return spawn_process({"/bin/bash", "-c", "exec " + std::string(PERFORMER_BINARY) + " " + args + " > " + out + " 2>&1"},
                       {"RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank),
                        "WORLD_SIZE=" + std::to_string(size), "LOCAL_WORLD_SIZE=" + std::to_string(size),
                        "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port)});
}

bool has(const std::string& file, const std::string& text) { return read_text(file).find(text) != std::string::npos; }

// A TCP listener that accepts connections (the kernel completes them into the backlog) and never answers:
// another program holding the port.
class SilentListener {
 public:
  SilentListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot listen");
    port_ = ntohs(a.sin_port);
  }
  ~SilentListener() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1, port_ = 0;
};

}  // namespace

TEST(Rendezvous, APortHeldByAnotherProgramEndsAtTheDeadlineOrOnSigterm) {
  TempDir d;
  SilentListener other;
  // Rank 1 reaches the listener, which never answers: one line at runtime.timeout_s saying so.
  auto t0 = Clock::now();
  int pid = start_rank(1, 2, other.port(), train_args(d.file("run"), 6), d.file("r1.txt"));
  EXPECT_EQ(wait_for(pid, 40), 1) << read_text(d.file("r1.txt"));
  EXPECT_LT(seconds_since(t0), 25) << "the deadline is runtime.timeout_s (6 s) plus start-up";
  EXPECT_TRUE(has(d.file("r1.txt"), "error: rank 1 of 2: something at 127.0.0.1:" + std::to_string(other.port()) +
                                        " accepts connections but did not answer")) << read_text(d.file("r1.txt"));
  // The same wait ends on SIGTERM, well before the deadline.
  pid = start_rank(1, 2, other.port(), train_args(d.file("run"), 120), d.file("r1b.txt"));
  ASSERT_TRUE(wait_until([&] { return has(d.file("r1b.txt"), "waiting for the rendezvous store"); }, 60))
      << read_text(d.file("r1b.txt"));
  t0 = Clock::now();
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_for(pid, 30), 130) << read_text(d.file("r1b.txt"));
  EXPECT_LT(seconds_since(t0), 5);
  EXPECT_TRUE(has(d.file("r1b.txt"), "interrupted while waiting for the rendezvous store")) << read_text(d.file("r1b.txt"));
  // Rank 0 cannot host the store on a port in use: an error at once, naming the port.
  pid = start_rank(0, 2, other.port(), train_args(d.file("run"), 120), d.file("r0.txt"));
  EXPECT_EQ(wait_for(pid, 60), 1) << read_text(d.file("r0.txt"));
  EXPECT_TRUE(has(d.file("r0.txt"), "cannot host the rendezvous store on port " + std::to_string(other.port())))
      << read_text(d.file("r0.txt"));
  EXPECT_FALSE(fs::exists(d.file("run"))) << "nothing of the run is written before its job forms";
}

TEST(Rendezvous, AMissingRankIsNamedStopSignalsAreHonouredAndTheDeadlineHolds) {
  TempDir d;
  const int port = free_local_port();
  // WORLD_SIZE=2 with only rank 0: it says whom it waits for, and Ctrl-C ends the wait at once.
  int pid = start_rank(0, 2, port, train_args(d.file("run"), 120), d.file("a.txt"));
  const std::string waiting = "waiting for ranks 1 of 2 at 127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(wait_until([&] { return has(d.file("a.txt"), waiting); }, 60)) << read_text(d.file("a.txt"));
  auto t0 = Clock::now();
  ::kill(pid, SIGINT);
  EXPECT_EQ(wait_for(pid, 30), 130) << read_text(d.file("a.txt"));
  EXPECT_LT(seconds_since(t0), 5);
  // SIGHUP (a closed terminal) likewise.
  pid = start_rank(0, 2, port, train_args(d.file("run"), 120), d.file("b.txt"));
  ASSERT_TRUE(wait_until([&] { return has(d.file("b.txt"), waiting); }, 60)) << read_text(d.file("b.txt"));
  ::kill(pid, SIGHUP);
  EXPECT_EQ(wait_for(pid, 30), 130) << read_text(d.file("b.txt"));
  // One deadline: runtime.timeout_s, then one line naming the rank that never came.
  t0 = Clock::now();
  pid = start_rank(0, 2, port, train_args(d.file("run"), 6), d.file("c.txt"));
  EXPECT_EQ(wait_for(pid, 40), 1) << read_text(d.file("c.txt"));
  EXPECT_LT(seconds_since(t0), 25);
  EXPECT_TRUE(has(d.file("c.txt"), "error: rank 0 of 2: rank 1 of 2 never joined the job at 127.0.0.1:" +
                                        std::to_string(port) + " within runtime.timeout_s = 6 s"))
      << read_text(d.file("c.txt"));
  EXPECT_FALSE(fs::exists(d.file("run/metrics.csv")));
}

TEST(Rendezvous, ARankNeverJoinsAnotherJobsStore) {
  TempDir d;
  const int port = free_local_port();
  const std::string a = d.file("a");
  const int a0 = start_rank(0, 2, port, train_args(a, 60, "--set train.steps=100000"), d.file("a0.txt"));
  const int a1 = start_rank(1, 2, port, train_args(a, 60, "--set train.steps=100000"), d.file("a1.txt"));
  ASSERT_TRUE(wait_until([&] { return fs::exists(a + "/metrics.csv") && read_text(a + "/metrics.csv").size() > 200; }, 120))
      << read_text(d.file("a0.txt"));
  // Job B (another run) on job A's port: its rank 0 cannot host, its rank 1 is refused at once by A's store.
  auto t0 = Clock::now();
  int b1 = start_rank(1, 2, port, train_args(d.file("b"), 60), d.file("b1.txt"));
  EXPECT_EQ(wait_for(b1, 30), 1) << read_text(d.file("b1.txt"));
  EXPECT_LT(seconds_since(t0), 20) << "refused at once, not at the deadline";
  EXPECT_TRUE(has(d.file("b1.txt"), "belongs to another job")) << read_text(d.file("b1.txt"));
  // The same command as A's rank 1 (no launcher to tell the jobs apart): rank 1 is taken.
  b1 = start_rank(1, 2, port, train_args(a, 60, "--set train.steps=100000"), d.file("b1b.txt"));
  EXPECT_EQ(wait_for(b1, 30), 1) << read_text(d.file("b1b.txt"));
  EXPECT_TRUE(has(d.file("b1b.txt"), "has already joined the job at 127.0.0.1:" + std::to_string(port) + " as rank 1"))
      << read_text(d.file("b1b.txt"));
  // Job A never noticed: it still trains, and stops cleanly when asked.
  const size_t rows = read_text(a + "/metrics.csv").size();
  ASSERT_TRUE(wait_until([&] { return read_text(a + "/metrics.csv").size() > rows; }, 60));
  ::kill(a0, SIGTERM);
  EXPECT_EQ(wait_for(a0, 60), 130) << read_text(d.file("a0.txt"));
  EXPECT_EQ(wait_for(a1, 60), 130) << read_text(d.file("a1.txt"));
}

TEST(Rendezvous, TheLauncherStopsTheJobWhenARankIsKilledOrInterruptedAtStart) {
  TempDir d;
  // A rank killed by a signal (here SIGKILL, as the OOM killer would) is a failure: the launcher stops the
  // others at once instead of leaving them in the rendezvous until runtime.timeout_s (120 s).
  int launcher = spawn_process({"/bin/bash", "-c", "exec " + std::string(PERFORMER_BINARY) + " " +
                                                       train_args(d.file("run"), 120) + " --nproc 2 > " + d.file("k.txt") + " 2>&1"},
                               {});
  std::vector<int> ranks;
  ASSERT_TRUE(wait_until([&] { return (ranks = children_of(launcher)).size() == 2; }, 60));
  auto t0 = Clock::now();
  ::kill(ranks[1], SIGKILL);
  EXPECT_EQ(wait_for(launcher, 60), 137) << read_text(d.file("k.txt"));
  EXPECT_LT(seconds_since(t0), 15) << read_text(d.file("k.txt"));
  EXPECT_TRUE(has(d.file("k.txt"), "was killed by signal 9; stopping the other ranks")) << read_text(d.file("k.txt"));
  // SIGINT to a rank the moment it exists, before its handlers are in place: it waits (blocked) and is
  // taken as a clean stop once they are; the job ends interrupted (130), at once, not at the deadline.
  launcher = spawn_process({"/bin/bash", "-c", "exec " + std::string(PERFORMER_BINARY) + " " +
                                                   train_args(d.file("run2"), 120) + " --nproc 2 > " + d.file("i.txt") + " 2>&1"},
                           {});
  ASSERT_TRUE(wait_until([&] { return (ranks = children_of(launcher)).size() == 2; }, 60));
  ::kill(ranks[1], SIGINT);
  t0 = Clock::now();
  EXPECT_EQ(wait_for(launcher, 60), 130) << read_text(d.file("i.txt"));
  EXPECT_LT(seconds_since(t0), 20) << read_text(d.file("i.txt"));
  EXPECT_FALSE(fs::exists(d.file("run2/metrics.csv")));
}
