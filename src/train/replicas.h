// The replicas of a data-parallel job: every rank holds the same model and optimizer state, to the last
// bit. Ranks initialize, load a checkpoint or apply an update each on their own, and two CPUs (or GPUs)
// with other vector units can round one of those differently; from then on the ranks would train
// different models while their gradient sums pretend otherwise. So rank 0's state is sent to every rank
// when a job starts, and at each checkpoint a bitwise fingerprint shows whether the ranks still agree
// (where they do not, rank 0's state is sent again and the log says so).
//
// The replicated state: every parameter and buffer of the model (FAVOR's projections and their draw
// included) and the optimizer's moments, by name.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "model/encoder.h"
#include "train/communicator.h"
#include "train/optimizer.h"

namespace performer {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Parameters, buffers ("buffer:" names) and optimizer moments ("exp_avg:", "exp_avg_sq:"), in one order on
// every rank.
NamedTensors replicated_state(Encoder& model, Optimizer& optimizer);

// What taking rank 0's state changed on this rank: how many tensors differed from rank 0's, and the
// largest relative difference ||mine - rank 0's|| / ||rank 0's|| among them (0 when nothing differed).
struct Divergence {
  int64_t tensors = 0, differing = 0;
  std::string worst;  // the name of the most different tensor
  double max_relative = 0;
};

// Copies rank 0's tensors into every rank's (a collective: every rank calls it with the same names and
// shapes). Returns this rank's divergence before the copy.
Divergence take_rank0_state(Communicator& comm, const NamedTensors& state);

// A hash of the bytes of every tensor, in order: equal on two ranks exactly when their states are equal
// bit for bit (up to hash collisions, 2^-64).
uint64_t state_fingerprint(const NamedTensors& state);

// Whether every rank's fingerprint equals rank 0's (a collective).
bool same_on_every_rank(Communicator& comm, uint64_t fingerprint);

// Rank 0's random-feature projections copied into every rank's (a collective), after a redraw: each rank
// draws them itself, and an orthogonal draw goes through a QR decomposition whose rounding depends on the
// CPU and BLAS.
void take_rank0_features(Communicator& comm, Encoder& model);

}  // namespace performer
