#include "train/rendezvous.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
// TCPStoreOptions::masterListenFd: in LibTorch 2.3 and later (checked in 2.11's headers; 1.13 lacks it).
#define PERFORMER_STORE_LISTEN_FD (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3))

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "util/error.h"
#include "util/log.h"
#include "util/names.h"
#include "util/signals.h"
#include "util/text.h"

namespace performer {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(100);     // the watch's and rank 0's polling period
constexpr auto kFirstNotice = std::chrono::seconds(3);     // a wait this long is announced...
constexpr auto kNoticeEvery = std::chrono::seconds(30);    // ...and again this often
constexpr auto kNamesEvery = std::chrono::seconds(1);      // rank 0 looks up who is missing this often
// LibTorch's own timeouts in the start are set this much beyond the deadline, so that the watch, which
// can say what never came, is the one that ends a start that takes too long.
constexpr auto kLibraryMargin = std::chrono::seconds(60);

std::string address(const World& w) { return w.master_addr + ":" + std::to_string(w.master_port); }

std::string who(const World& w) { return "rank " + std::to_string(w.rank) + " of " + std::to_string(w.size); }

std::string seconds(double s) { return fmt::format("runtime.timeout_s = {:g} s", s); }

// "1, 3 and 4" (the first 16, then how many more).
std::string rank_list(const std::vector<int>& ranks) {
  std::vector<std::string> names;
  for (size_t i = 0; i < ranks.size() && i < 16; ++i) names.push_back(std::to_string(ranks[i]));
  std::string out = join(names, ", ");
  if (ranks.size() > 16) out += " and " + std::to_string(ranks.size() - 16) + " more";
  return out;
}

// Whether something accepts a TCP connection at host:port within `timeout_ms`.
bool accepts_connections(const std::string& host, int port, int timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return false;
  bool ok = false;
  for (addrinfo* a = found; a != nullptr && !ok; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::poll(&p, 1, timeout_ms) == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return ok;
}

#if PERFORMER_STORE_LISTEN_FD
bool is_loopback_address(const sockaddr* a) {
  if (a->sa_family == AF_INET)
    return (ntohl(reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr) >> 24) == 127;
  if (a->sa_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr);
  return false;
}

// The store's listening socket, bound to MASTER_ADDR's own address (127.0.0.1 for a one-machine job)
// rather than to every interface: c10d's store has no authentication, so whoever reaches its port could
// read and write the job's keys. Returns the listening descriptor, or -1 where MASTER_ADDR is not an
// address of this host (a name that resolves elsewhere, behind NAT), or is a host name that resolves to
// a loopback address here (Debian's /etc/hosts maps the host name to 127.0.1.1) while the job spans other
// hosts, which reach it through DNS: the caller then lets the store bind every interface, and says so.
// Throws Error when the port is in use.
int listen_on_master_addr(const World& w) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(w.master_addr.c_str(), std::to_string(w.master_port).c_str(), &hints, &found) != 0) return -1;
  int fd = -1, in_use = 0;
  const bool other_hosts = w.local_size < w.size;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    if (other_hosts && is_loopback_address(a->ai_addr)) continue;
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as c10d does: a port in TIME_WAIT is free
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      if (errno == EADDRINUSE) in_use = 1;
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0 && in_use != 0)
    throw Error("address already in use");
  return fd;
}
#endif

std::string host_and_pid() {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + " (pid " + std::to_string(::getpid()) + ")";
}

}  // namespace

enum class Phase { kStore, kJob, kRanks, kGroup };

// The deadline and the stop signals of a job's start, watched from a thread of its own (the joining
// thread may be blocked inside LibTorch).
class Rendezvous::Watch {
 public:
  Watch(const World& w, double timeout_s, const std::atomic<bool>* stop)
      : w_(w), timeout_s_(timeout_s), stop_(stop), start_(Clock::now()),
        deadline_(start_ + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s))),
        thread_([this] { run(); }) {}
  ~Watch() {
    {
      std::lock_guard<std::mutex> lock(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void phase(Phase p, const std::string& backend = "") {
    std::lock_guard<std::mutex> lock(m_);
    phase_ = p;
    backend_ = backend;
  }
  void missing(std::vector<int> ranks) {
    std::lock_guard<std::mutex> lock(m_);
    missing_ = std::move(ranks);
  }

 private:
  // The stop signals stay with the main thread (its handlers set `stop_`, which this thread reads).
  void run() {
    const sigset_t stop_signals = stop_signal_set();
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    auto next_notice = start_ + kFirstNotice;
    std::unique_lock<std::mutex> lock(m_);
    while (!done_) {
      cv_.wait_for(lock, kPoll);
      if (done_) break;
      if (stop_ != nullptr && stop_->load())
        end(kInterruptedExit, who(w_) + ": interrupted while " + waiting_for() + "; nothing of the run was written");
      const auto now = Clock::now();
      if (now >= deadline_) {
        const Phase p = phase_;
        const std::vector<int> missing = missing_;
        const std::string backend = backend_;
        lock.unlock();  // the probe of the store's address may take a second
        end(1, "error: " + who(w_) + ": " + deadline_message(p, missing, backend));
      }
      if (now >= next_notice) {
        if (w_.rank == 0 || phase_ == Phase::kStore || phase_ == Phase::kJob)  // those wait for rank 0
          std::fprintf(stderr, "%s: %s (for up to %s; Ctrl-C stops)\n", who(w_).c_str(), waiting_for().c_str(),
                       seconds(timeout_s_).c_str());
        next_notice += kNoticeEvery;
      }
    }
  }

  [[noreturn]] static void end(int status, const std::string& line) {
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
    std::_Exit(status);  // the joining thread may be blocked in LibTorch for good: nothing to unwind
  }

  std::string store_host() const {
    return w_.agent_store ? "torchrun's agent" : "rank 0 (which hosts the rendezvous store)";
  }

  // Waiting for rank 0's job record on a store rank 0 hosts is waiting for the store: rank 0 writes it
  // right after starting the store, so a store that lacks it is not rank 0's (some other program there).
  Phase effective(Phase p) const { return p == Phase::kJob && !w_.agent_store ? Phase::kStore : p; }

  std::string waiting_for() const {  // under m_
    switch (effective(phase_)) {
      case Phase::kStore:
        if (w_.rank == 0 && !w_.agent_store) return "starting the rendezvous store at " + address(w_);
        return "waiting for the rendezvous store at " + address(w_) + " (" + store_host() + ")";
      case Phase::kJob: return "waiting for rank 0 at " + address(w_);
      case Phase::kRanks:
        if (missing_.empty()) return "waiting for the other ranks at " + address(w_);
        return "waiting for ranks " + rank_list(missing_) + " of " + std::to_string(w_.size) + " at " + address(w_);
      case Phase::kGroup: return "connecting the ranks (" + backend_ + " process group)";
    }
    return "";
  }

  std::string deadline_message(Phase p, const std::vector<int>& missing, const std::string& backend) const {
    const std::string within = " within " + seconds(timeout_s_);
    switch (effective(p)) {
      case Phase::kStore:
        if (accepts_connections(w_.master_addr, w_.master_port, 1000))
          return "something at " + address(w_) + " accepts connections but did not answer as this job's rendezvous "
                 "store" + within + ": MASTER_PORT is held by another program; give the job a free port";
        return "nothing answered at " + address(w_) + within + ": " + store_host() +
               " was not started or has failed, or the ranks were given different MASTER_ADDR/MASTER_PORT";
      case Phase::kJob: return "rank 0 never joined the job at " + address(w_) + within;
      case Phase::kRanks:
        if (missing.empty())
          return "not every rank joined the job at " + address(w_) + within + " (rank 0's message names them)";
        return (missing.size() == 1 ? "rank " : "ranks ") + rank_list(missing) + " of " + std::to_string(w_.size) +
               " never joined the job at " + address(w_) + within +
               " (not started, failed before joining, or given another MASTER_ADDR, MASTER_PORT or WORLD_SIZE)";
      case Phase::kGroup:
        return "every rank joined at " + address(w_) + ", but the " + backend + " process group did not connect them" +
               within + " (a firewall between the hosts, or the wrong network interface: set " +
               (backend == "nccl" ? "NCCL_SOCKET_IFNAME" : "GLOO_SOCKET_IFNAME") + ")";
    }
    return "";
  }

  const World w_;
  const double timeout_s_;
  const std::atomic<bool>* stop_;
  const Clock::time_point start_, deadline_;
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  Phase phase_ = Phase::kStore;
  std::string backend_;
  std::vector<int> missing_;
  std::thread thread_;  // last: started once the rest is set
};

bool store_binds_one_address() { return PERFORMER_STORE_LISTEN_FD; }

Rendezvous::Rendezvous(const World& world, double timeout_seconds, const std::atomic<bool>* stop, const std::string& job)
    : watch_(std::make_unique<Watch>(world, timeout_seconds, stop)) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_seconds));
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)) + kLibraryMargin;
  const std::string me = who(world);
  if (stop != nullptr && stop->load())  // a signal that waited for the handlers (train --nproc blocks them)
    throw Interrupted(me + ": interrupted before the job formed; nothing of the run was written");
  // 1. The store. No one waits inside it for the others (step 3 does, naming them).
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(world.master_port);
  so.isServer = world.rank == 0 && !world.agent_store;
  so.waitWorkers = false;
  so.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> base;
  const char* file = std::getenv(kStoreFileVariable);
  try {
    if (file != nullptr && *file != '\0' && !store_binds_one_address()) {
      // `train --nproc` on a LibTorch whose store cannot be bound to loopback: a file store in the
      // launcher's private folder (mode 0700), no socket at all.
      base = c10::make_intrusive<c10d::FileStore>(file, world.size);
      base->setTimeout(timeout);
    } else if (so.isServer) {
#if PERFORMER_STORE_LISTEN_FD  // LibTorch 1.13's store cannot be bound to one address
      const int fd = listen_on_master_addr(world);
      if (fd >= 0)
        so.masterListenFd = fd;  // the store takes the socket over
      else
        warn(me + ": MASTER_ADDR " + world.master_addr + " is not a network address of this host, so the rendezvous "
             "store listens on every interface (port " + std::to_string(world.master_port) + "; it has no authentication: "
             "keep the job on a private network)");
#else
      warn(me + ": this LibTorch's (" TORCH_VERSION ") rendezvous store listens on every interface (port " +
           std::to_string(world.master_port) + "; it has no authentication: keep the job on a private network, or "
           "use the LibTorch 2.x build, whose store listens on MASTER_ADDR only)");
#endif
    }
    if (base == nullptr) base = c10::make_intrusive<c10d::TCPStore>(world.master_addr, so);
  } catch (const std::exception& e) {
    if (Clock::now() >= deadline) std::this_thread::sleep_for(std::chrono::seconds(5));  // the watch says why and ends
    if (so.isServer)
      throw Error(me + ": cannot host the rendezvous store on port " + std::to_string(world.master_port) + ": " +
                  first_line(e.what()) + " (another job or program holds MASTER_PORT? give the job a free port)");
    throw Error(me + ": cannot reach the rendezvous store at " + address(world) + ": " + first_line(e.what()));
  }
  // One namespace per job attempt: torchrun's agent store outlives a restart of the workers.
  store_ = c10::make_intrusive<c10d::PrefixStore>("performer/" + std::to_string(world.restart), base);
  try {
    // 2. The job: rank 0 records it; the others check they reached the same one.
    watch_->phase(Phase::kJob);
    const std::string identity = world.job + "|" + job;
    if (world.rank == 0) {
      store_->set("job", std::vector<uint8_t>(identity.begin(), identity.end()));
    } else {
      store_->wait({"job"}, timeout);
      const std::vector<uint8_t> v = store_->get("job");
      const std::string theirs(v.begin(), v.end());
      if (theirs != identity)
        throw Error(me + ": the rendezvous store at " + address(world) + " belongs to another job (its rank 0 runs " +
                    (theirs.substr(0, theirs.find('|')) == world.job ? "another config" : "job '" + theirs.substr(0, theirs.find('|')) + "'") +
                    "): two jobs were given the same MASTER_PORT; give each its own, and every rank of a job the "
                    "same command");
    }
    // 3. The ranks: each number once, then everyone.
    watch_->phase(Phase::kRanks);
    const std::string mine = "rank/" + std::to_string(world.rank);
    if (store_->add(mine + "/claims", 1) != 1) {
      std::string holder = "another process";
      if (store_->check({mine})) {
        const std::vector<uint8_t> v = store_->get(mine);
        holder = "the process " + std::string(v.begin(), v.end());
      }
      throw Error(me + ": " + holder + " has already joined the job at " + address(world) + " as rank " +
                  std::to_string(world.rank) + " (a rank started twice, or two jobs given the same MASTER_PORT)");
    }
    const std::string here = host_and_pid();
    store_->set(mine, std::vector<uint8_t>(here.begin(), here.end()));
    if (store_->add("arrived", 1) == world.size) store_->set("all-arrived", std::vector<uint8_t>{1});
    if (world.rank == 0) {  // names the missing ranks for the notices and the deadline message
      auto next_names = Clock::now();
      while (!store_->check({"all-arrived"})) {
        if (Clock::now() >= next_names) {
          std::vector<int> missing;
          for (int r = 0; r < world.size; ++r)
            if (!store_->check({"rank/" + std::to_string(r)})) missing.push_back(r);
          watch_->missing(std::move(missing));
          next_names = Clock::now() + kNamesEvery;
        }
        std::this_thread::sleep_for(kPoll);
      }
    } else {
      store_->wait({"all-arrived"}, timeout);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // the store went away (its host ended), or a library timeout
    if (Clock::now() >= deadline) std::this_thread::sleep_for(std::chrono::seconds(5));  // the watch says why and ends
    throw Error(me + ": the rendezvous at " + address(world) + " failed: " + first_line(e.what()) + " (" +
                (world.agent_store ? std::string("torchrun's agent") : std::string("rank 0")) + " ended?)");
  }
}

Rendezvous::~Rendezvous() = default;

void Rendezvous::forming_group(const std::string& backend) { watch_->phase(Phase::kGroup, backend); }

}  // namespace performer
