#include "util/process.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "util/error.h"

namespace performer {

ChildResult run_child(const std::vector<std::string>& argv, uint64_t address_space_limit, double timeout_seconds) {
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
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  for (;;) {
    if (timeout_seconds > 0 && !r.timed_out) {
      const double left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
      struct pollfd p {fds[0], POLLIN, 0};
      const int ready = left > 0 ? ::poll(&p, 1, static_cast<int>(std::min(left * 1000.0, 1e9)) + 1) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {  // deadline: kill it, then drain what it wrote until the pipe closes
        ::kill(pid, SIGKILL);
        r.timed_out = true;
      }
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

int spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
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
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
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

uint64_t anonymous_rss_bytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
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
