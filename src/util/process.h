// Running a child process (used by benchmarks to measure each cell in a fresh process: its own peak
// memory, and an out-of-memory failure that cannot take the parent down).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace performer {

struct ChildResult {
  int exit_code = -1;     // -1 when killed by a signal
  int signal = 0;         // the signal that killed it, 0 if none
  std::string output;     // stdout and stderr
  uint64_t peak_rss = 0;  // bytes (wait4 rusage)
  bool timed_out = false; // killed (SIGKILL) at its deadline
  bool over_memory = false; // killed (SIGKILL) when its anonymous resident memory passed memory_limit
};

// Runs argv[0] with the arguments; address-space limit in bytes (0 = none) is applied in the child. A child
// still running after timeout_seconds (0 = no deadline) is killed and reported as timed out, so a child
// that hangs never hangs the parent. With memory_limit (bytes, 0 = none) the parent watches the child's
// anonymous resident memory (RssAnon, every 10 ms) and kills it once it passes the limit: nothing fails
// inside the child, whose libraries may not survive a failed allocation (OpenBLAS retries one forever).
ChildResult run_child(const std::vector<std::string>& argv, uint64_t address_space_limit = 0, double timeout_seconds = 0,
                      uint64_t memory_limit = 0);

// Starts argv[0] with the arguments and this process's environment plus `env` ("NAME=value"), its
// stdout/stderr inherited; returns its pid (wait for it with waitpid). Throws Error when fork fails.
// The child gets SIGTERM if this process dies first (it never outlives its parent unnoticed). With
// block_stop_signals it starts with SIGINT/SIGTERM/SIGHUP blocked (util/signals.h): they wait until the child
// unblocks them, once its handlers are installed.
int spawn_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  bool block_stop_signals = false);

// A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0).
int free_local_port();

// This host's address on the route to `host` (an address or a name): the source address the kernel
// would give a packet sent there ("10.0.0.2"); `host` itself when it is one of this host's addresses.
// "" where `host` does not resolve or no route leads there. Sends nothing.
std::string local_address_towards(const std::string& host);

// Path of the running executable (/proc/self/exe).
std::string self_executable();
// Current resident and virtual size of this process in bytes (/proc/self/statm).
uint64_t current_rss_bytes();
uint64_t current_vm_bytes();
// This process's (or process pid's) anonymous resident memory (RssAnon of /proc/<pid>/status: heap and
// stacks, not the page cache of mapped files) in bytes; 0 where the kernel does not report it.
uint64_t anonymous_rss_bytes(int pid = 0);
// Peak resident set size of this process in bytes (getrusage).
uint64_t peak_rss_bytes();
// Physical memory of the machine in bytes.
uint64_t physical_memory_bytes();

// Limits this process's address space to what is mapped now plus `extra` bytes (RLIMIT_AS), so that an
// allocation beyond it fails (and is reported) instead of the machine swapping or the OOM killer striking.
void limit_address_space_above_now(uint64_t extra);
// Whether an exception message (LibTorch's CPU/CUDA allocators, std::bad_alloc, failed thread creation)
// means memory ran out.
bool is_out_of_memory_message(const std::string& message);

}  // namespace performer
