// `performer train --nproc N` (and `bench train --nproc N`): N local ranks of the same command, started
// with the environment torchrun gives its workers (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR=127.0.0.1, a free MASTER_PORT), so they take the same code path as under torchrun.
#pragma once
#include <string>

namespace performer::cli {

// The process's own command line, kept by main for the launcher.
void set_command_line(int argc, char** argv);

// Runs the command line again, without --nproc, as `nproc` ranks, and waits for them. The ranks start
// with SIGINT/SIGTERM/SIGHUP blocked until their handlers are in place (util/signals.h); those signals are
// passed on to every rank (they stop together at the next step, with one checkpoint, and exit 130). When
// a rank fails (a non-zero status other than 130) the others get up to timeout_s + a grace period to
// notice and stop by themselves, then are killed; when one is killed by a signal, or ends interrupted
// (130), the others get SIGTERM at once. Returns the first failure's exit status (128 + signal for a rank killed by one), else the first
// non-zero status (130), else 0.
int run_local_ranks(int nproc, double timeout_s);

}  // namespace performer::cli
