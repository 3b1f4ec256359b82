#include "util/process.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "util/error.h"
#include "util/signals.h"

namespace performer {

ChildResult run_child(const std::vector<std::string>& argv, uint64_t address_space_limit, double timeout_seconds,
                      uint64_t memory_limit) {
  int fds[2];
  if (::pipe(fds) != 0) throw Error(std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);  // allocator and library chatter is captured, not shown
    ::close(fds[0]);
    ::close(fds[1]);
    if (address_space_limit > 0) {
      struct rlimit rl;
      rl.rlim_cur = rl.rlim_max = address_space_limit;
      ::setrlimit(RLIMIT_AS, &rl);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  ChildResult r;
  char buf[4096];
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_seconds));
  constexpr int kWatchMs = 10;  // how often the memory of the child is looked at
  bool killed = false;
  for (;;) {
    if ((timeout_seconds > 0 || memory_limit > 0) && !killed) {
      int wait_ms = memory_limit > 0 ? kWatchMs : -1;
      if (timeout_seconds > 0) {
        const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
        const int left_ms = left > 0 ? static_cast<int>(std::min(left * 1000.0, 1e9)) + 1 : 0;
        wait_ms = wait_ms < 0 ? left_ms : std::min(wait_ms, left_ms);
      }
      struct pollfd p {fds[0], POLLIN, 0};
      const int ready = ::poll(&p, 1, wait_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (memory_limit > 0 && anonymous_rss_bytes(pid) > memory_limit) {
        ::kill(pid, SIGKILL);  // then drain what it wrote until the pipe closes
        r.over_memory = killed = true;
      } else if (timeout_seconds > 0 && Clock::now() >= deadline) {
        ::kill(pid, SIGKILL);
        r.timed_out = killed = true;
      }
      if (ready == 0) continue;
    }
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) r.output.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR) break;
  }
  ::close(fds[0]);
  int status = 0;
  struct rusage ru {};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.peak_rss = static_cast<uint64_t>(ru.ru_maxrss) * 1024;
  return r;
}

int spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env, bool block_stop_signals) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) vars.emplace_back(*e);
  for (const std::string& v : env) {  // replaces a variable of the same name
    const std::string name = v.substr(0, v.find('=') + 1);
    vars.erase(std::remove_if(vars.begin(), vars.end(), [&](const std::string& x) { return x.rfind(name, 0) == 0; }),
               vars.end());
    vars.push_back(v);
  }
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(const_cast<char*>(v.c_str()));
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();
  // Blocked around the fork, so that the child has them blocked from its first instruction (the mask
  // survives exec; the handlers do not), and restored here in the parent.
  const sigset_t stop = stop_signal_set();
  sigset_t before;
  if (block_stop_signals) ::pthread_sigmask(SIG_BLOCK, &stop, &before);
  const pid_t pid = ::fork();
  if (pid != 0 && block_stop_signals) ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  if (pid < 0) throw Error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {  // only async-signal-safe calls until exec
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(143);  // the parent died before prctl took effect
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  return static_cast<int>(pid);
}

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw Error("cannot find a free TCP port on 127.0.0.1: " + why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string local_address_towards(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), "9", &hints, &found) != 0) return "";
  std::string out;
  for (addrinfo* a = found; a != nullptr && out.empty(); a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    sockaddr_storage mine{};
    socklen_t len = sizeof mine;
    char text[INET6_ADDRSTRLEN] = {0};
    // A UDP connect only picks the route and the source address.
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&mine), &len) == 0) {
      const void* addr = mine.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&mine)->sin6_addr)
                                                    : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&mine)->sin_addr);
      if (::inet_ntop(mine.ss_family, addr, text, sizeof text) != nullptr) out = text;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  return out;
}

uint64_t anonymous_rss_bytes(int pid) {
  const std::string path = pid > 0 ? "/proc/" + std::to_string(pid) + "/status" : std::string("/proc/self/status");
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kb = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::strncmp(line, "RssAnon:", 8) == 0) {
      kb = std::strtoull(line + 8, nullptr, 10);
      break;
    }
  std::fclose(f);
  return kb * 1024;
}

std::string self_executable() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("cannot resolve /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

namespace {
void statm(uint64_t& vm, uint64_t& rss) {
  vm = rss = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return;
  unsigned long long a = 0, b = 0;
  if (std::fscanf(f, "%llu %llu", &a, &b) == 2) {
    const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    vm = a * page;
    rss = b * page;
  }
  std::fclose(f);
}
}  // namespace

uint64_t current_rss_bytes() {
  uint64_t vm, rss;
  statm(vm, rss);
  return rss;
}

uint64_t current_vm_bytes() {
  uint64_t vm, rss;
  statm(vm, rss);
  return vm;
}

void limit_address_space_above_now(uint64_t extra) {
  struct rlimit rl;
  rl.rlim_cur = rl.rlim_max = current_vm_bytes() + extra;
  ::setrlimit(RLIMIT_AS, &rl);
}

bool is_out_of_memory_message(const std::string& m) {
  for (const char* s : {"out of memory", "not enough memory", "can't allocate memory", "Cannot allocate memory",
                        "bad_alloc", "Resource temporarily unavailable", "OutOfMemory"})
    if (m.find(s) != std::string::npos) return true;
  return false;
}

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

uint64_t physical_memory_bytes() {
  return static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace performer
