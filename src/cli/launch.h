// `performer train --nproc N` (and `bench train --nproc N`): N local ranks of the same command, started
// with the environment torchrun gives its workers (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR=127.0.0.1, a free MASTER_PORT), so they take the same code path as under torchrun.
#pragma once
#include <string>

namespace performer::cli {

// The process's own command line, kept by main for the launcher.
void set_command_line(int argc, char** argv);

// Runs the command line again, without --nproc, as `nproc` ranks, and waits for them. SIGINT/SIGTERM are
// passed on to every rank (they stop together at the next step, with one checkpoint). When a rank fails,
// the others get up to timeout_s + a grace period to notice and stop by themselves, then are killed.
// Returns the first non-zero exit status of a rank (128 + signal for one killed by a signal), else 0.
int run_local_ranks(int nproc, double timeout_s);

}  // namespace performer::cli
