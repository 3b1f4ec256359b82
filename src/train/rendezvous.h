// How the ranks of a data-parallel job meet: the rendezvous store (a c10d TCPStore at MASTER_ADDR:MASTER_PORT,
// hosted by rank 0 or by torchrun's agent), then the process group over it (train/communicator.h).
//
// The whole start of a job has one deadline, runtime.timeout_s, and honours SIGINT/SIGTERM/SIGHUP:
//
//   1. store   rank 0 hosts the store (a port already in use is an error at once); the others connect.
//   2. job     rank 0 records the job's identity (World::job and the run's config); a rank whose identity
//              differs has reached another job's store (two jobs on one MASTER_PORT) and stops at once.
//   3. ranks   each rank claims its rank number (a number claimed twice is an error at once) and waits for
//              the others; rank 0 says which it is waiting for ("waiting for ranks 1 of 2 at ADDR:PORT").
//   4. group   the process group connects the ranks to each other, and the first collective counts them.
//
// A watch thread sees the deadline and the stop signals even while LibTorch blocks in a connect or a
// read: at the deadline it prints one line naming what never came (the ranks that never joined, or
// whether anything listens at the store's address) and ends the process (status 1); on a signal it ends it
// with status 130. Nothing of a run is written before its job has formed, so nothing is lost.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "train/world.h"

namespace performer {

// Whether this LibTorch's TCPStore can be bound to one address (TCPStoreOptions::masterListenFd, LibTorch
// 2.3 and later). Where it cannot (1.13), a one-machine launch (`train --nproc`) meets through a file store
// in a private folder instead (kStoreFileVariable names its path), so nothing listens beyond loopback.
bool store_binds_one_address();
inline constexpr const char* kStoreFileVariable = "PERFORMER_STORE_FILE";

class Rendezvous {
 public:
  // Steps 1-3: returns once every rank has joined (or ends the process, as above). `stop`, when given, is
  // the flag the stop signals set; `job` identifies the run (the ranks of one job give the same).
  Rendezvous(const World& world, double timeout_seconds, const std::atomic<bool>* stop, const std::string& job);
  ~Rendezvous();  // stops the watch
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  // The job's store (this attempt's namespace of it).
  const c10::intrusive_ptr<c10d::Store>& store() const { return store_; }
  // Step 4 begins: the deadline message then speaks of the process group (`backend`: "gloo", "nccl").
  void forming_group(const std::string& backend);

  class Watch;

 private:
  std::unique_ptr<Watch> watch_;
  c10::intrusive_ptr<c10d::Store> store_;
};

}  // namespace performer
