// The signals that ask a long command to stop cleanly, and how a command takes them over.
//
//   SIGINT   Ctrl-C
//   SIGTERM  kill, schedulers (SLURM's notice before a time limit or preemption, torchrun's agent)
//   SIGHUP   the terminal or ssh session the command runs in was closed
//
// A command that can stop cleanly (train, embed, prepare) installs a handler for all three with
// StopSignals; the others keep the default action (the process ends). `performer train --nproc N` starts
// its ranks with the three blocked (util/process.h spawn_process), so a signal that arrives before a
// rank's handler is in place waits for it instead of killing the rank half-started; StopSignals (or
// unblock_stop_signals, for a command without a handler) unblocks them.
#pragma once
#include <signal.h>

#include <array>

namespace performer {

constexpr std::array<int, 3> kStopSignals{SIGINT, SIGTERM, SIGHUP};

// The stop signals as a signal set (for sigprocmask / pthread_sigmask).
sigset_t stop_signal_set();

// Unblocks the stop signals in this thread (and the threads it starts after), leaving their handlers.
void unblock_stop_signals();

// Installs `handler` for the stop signals while it lives, without SA_RESTART (a blocking open() of a FIFO
// or a read is interrupted), then unblocks them; the previous handlers come back when it goes.
class StopSignals {
 public:
  explicit StopSignals(void (*handler)(int));
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  std::array<struct sigaction, kStopSignals.size()> previous_{};
};

// The exit status of a command stopped by a signal, as documented: 130 whichever stop signal it was.
constexpr int kInterruptedExit = 130;

}  // namespace performer
