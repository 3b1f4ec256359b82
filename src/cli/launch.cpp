#include "cli/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "train/rendezvous.h"
#include "util/error.h"
#include "util/process.h"
#include "util/signals.h"

namespace performer::cli {

namespace {

std::vector<std::string> g_command_line;
constexpr int kMaxRanks = 1024;
volatile sig_atomic_t g_ranks[kMaxRanks];  // pids, for the signal handler
volatile sig_atomic_t g_rank_count = 0;
volatile sig_atomic_t g_forwarded = 0;     // the last stop signal passed on (ranks started after it get it too)
constexpr double kGraceSeconds = 15;       // beyond runtime.timeout_s, for the ranks to report and exit

void forward_signal(int sig) {
  g_forwarded = sig;
  for (int i = 0; i < g_rank_count; ++i)
    if (g_ranks[i] > 0) ::kill(static_cast<pid_t>(g_ranks[i]), sig);
}

// The command line without "--nproc N" / "--nproc=N".
std::vector<std::string> rank_command_line() {
  std::vector<std::string> out{self_executable()};
  for (size_t i = 1; i < g_command_line.size(); ++i) {
    const std::string& a = g_command_line[i];
    if (a == "--nproc") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc=", 0) == 0) continue;
    out.push_back(a);
  }
  return out;
}

int exit_status(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::string how_it_ended(int status) {
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + std::to_string(WTERMSIG(status));
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

// A rank that ended with an error or was killed by a signal (even SIGINT's: a training rank's handler
// would have made it exit 130 itself), unless it was the stop signal passed on to it (a command without
// handlers, such as bench train, ends by it); 0 and 130 (interrupted as asked, at the step every rank
// agreed on) are not failures.
bool failed(int status) {
  if (WIFSIGNALED(status)) return WTERMSIG(status) != g_forwarded;
  return WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != kInterruptedExit;
}

// This launch's identity, given to every rank (PERFORMER_JOB_ID): a rank of another job that reaches the
// same rendezvous port is refused instead of joining (train/communicator.h).
std::string job_id() {
  return "performer-nproc-" + std::to_string(::getpid()) + "-" +
         std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
}

class ForwardStopSignals {
 public:
  ForwardStopSignals() {
    g_forwarded = 0;
    struct sigaction sa {};
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < kStopSignals.size(); ++i) sigaction(kStopSignals[i], &sa, &previous_[i]);
  }
  ~ForwardStopSignals() {
    g_rank_count = 0;
    for (size_t i = 0; i < kStopSignals.size(); ++i) sigaction(kStopSignals[i], &previous_[i], nullptr);
  }
  ForwardStopSignals(const ForwardStopSignals&) = delete;
  ForwardStopSignals& operator=(const ForwardStopSignals&) = delete;

 private:
  std::array<struct sigaction, kStopSignals.size()> previous_{};
};

}  // namespace

void set_command_line(int argc, char** argv) { g_command_line.assign(argv, argv + argc); }

int run_local_ranks(int nproc, double timeout_s) {
  if (nproc < 1 || nproc > kMaxRanks) throw Error("--nproc " + std::to_string(nproc) + ": expected 1 to " + std::to_string(kMaxRanks));
  if (std::getenv("RANK") != nullptr || std::getenv("WORLD_SIZE") != nullptr)
    throw Error("--nproc: this process already is a rank (RANK/WORLD_SIZE are set, by torchrun?); leave --nproc out");
  const std::vector<std::string> argv = rank_command_line();
  const std::string port = std::to_string(free_local_port()), job = job_id();
  // Where the store cannot be bound to loopback (train/rendezvous.h), the ranks meet through a file store
  // in a folder only this user can open, removed when the ranks have ended.
  std::string store_dir;
  if (!store_binds_one_address()) {
    char pattern[] = "/tmp/performer-store-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw Error(std::string("--nproc: cannot make a folder in /tmp: ") + std::strerror(errno));
    store_dir = pattern;
  }
  struct RemoveFolder {
    const std::string& dir;
    ~RemoveFolder() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } remove_store_dir{store_dir};
  const ForwardStopSignals forwarding;
  std::vector<int> pids;
  try {
    for (int r = 0; r < nproc; ++r) {
      const std::string n = std::to_string(nproc), rank = std::to_string(r);
      // Started with the stop signals blocked: one that comes before the rank's handlers are in place
      // waits for them (a clean stop) instead of killing the rank half-started.
      std::vector<std::string> env{"RANK=" + rank, "WORLD_SIZE=" + n, "LOCAL_RANK=" + rank, "LOCAL_WORLD_SIZE=" + n,
                                   "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port,
                                   "PERFORMER_LAUNCHER=performer --nproc", "PERFORMER_JOB_ID=" + job};
      if (!store_dir.empty()) env.push_back(std::string(kStoreFileVariable) + "=" + store_dir + "/store");
      pids.push_back(spawn_process(argv, env, /*block_stop_signals=*/true));
      g_ranks[r] = pids.back();
      g_rank_count = r + 1;
      if (g_forwarded != 0) ::kill(pids.back(), g_forwarded);  // a stop asked while the ranks were starting
    }
  } catch (...) {  // the ranks already started would wait for the missing ones: stop them
    for (int p : pids) ::kill(p, SIGKILL);
    for (int p : pids) ::waitpid(p, nullptr, 0);
    throw;
  }
  int first_failure = 0, alive = nproc;
  std::chrono::steady_clock::time_point deadline{};
  bool failure = false, killing = false, interrupted = false;
  while (alive > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (int r = 0; r < nproc; ++r) {
        if (pids[static_cast<size_t>(r)] != pid) continue;
        --alive;
        g_ranks[r] = 0;
        pids[static_cast<size_t>(r)] = 0;
        const int code = exit_status(status);
        if (code != 0 && (first_failure == 0 || (!failure && failed(status)))) first_failure = code;  // failures first
        if ((code == kInterruptedExit || WIFSIGNALED(status)) && !failed(status) && alive > 0 && !interrupted) {
          // Interrupted: in training the ranks agreed on the step and end together; one that ends alone
          // (stopped before its job formed) leaves the others waiting for it, so they are stopped too.
          interrupted = true;
          for (int p : pids)
            if (p > 0) ::kill(p, SIGTERM);
        }
        if (!failed(status) || failure) continue;
        failure = true;
        if (alive == 0) continue;
        deadline = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(timeout_s + kGraceSeconds));
        if (WIFSIGNALED(status)) {
          // Killed (out of memory, by hand): it says nothing; the others are stopped now rather than left
          // to find out at their next collective or at the rendezvous deadline.
          std::fprintf(stderr, "performer --nproc: rank %d %s; stopping the other ranks\n", r, how_it_ended(status).c_str());
          for (int p : pids)
            if (p > 0) ::kill(p, SIGTERM);
        } else {
          std::fprintf(stderr, "performer --nproc: rank %d %s; waiting up to %.0f s for the other ranks to stop\n", r,
                       how_it_ended(status).c_str(), timeout_s + kGraceSeconds);
        }
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    if (failure && alive > 0 && !killing && std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "performer --nproc: %d rank(s) still running past the deadline; killing them\n", alive);
      for (int p : pids)
        if (p > 0) ::kill(p, SIGKILL);
      killing = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return first_failure;
}

}  // namespace performer::cli
