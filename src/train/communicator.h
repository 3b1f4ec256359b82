// Collectives of a data-parallel job on LibTorch's own engine, c10d: a TCPStore for the rendezvous (rank
// 0 hosts it, or torchrun's agent does) and a Gloo (CPU) or NCCL (CUDA) process group. A default-made
// Communicator is one process: every collective returns its input.
//
// Failures: a collective that fails (a peer closed its connection because it died, or nothing arrived
// within runtime.timeout_s) throws Error "rank R: <what> failed: <cause>; rank(s) K did not answer (died,
// killed or hung)". The ranks still alive name themselves in the store for a few seconds, so the message
// names the ones that are not; when the store itself is gone, rank 0 (its host) is named.
#pragma once
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "train/world.h"

namespace performer {

class Communicator {
 public:
  Communicator();  // one process
  // Joins the job (train/rendezvous.h): returns once every rank has connected. The start has one deadline,
  // timeout_seconds, and ends on a stop signal (`stop`: the flag its handlers set); `job` identifies the
  // run, the same on every rank of a job (a rank of another job on the same port is refused).
  Communicator(const World& world, Backend backend, const c10::Device& device, double timeout_seconds,
               const std::atomic<bool>* stop = nullptr, const std::string& job = "");
  ~Communicator();
  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;

  const World& world() const;
  int rank() const { return world().rank; }
  int size() const { return world().size; }
  bool distributed() const { return world().distributed(); }
  bool primary() const { return world().rank == 0; }  // the rank that writes files
  std::string backend() const;                         // "gloo", "nccl" or "none"

  // Element-wise sum / max / min over ranks, in place (double: exact for counts up to 2^53).
  void sum(std::vector<double>& values);
  void max(std::vector<double>& values);
  void min(std::vector<double>& values);

  // A sum over ranks of a tensor on the process group's device, started now and finished by wait().
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;  // throws Error as above
  };
  std::unique_ptr<Pending> sum_async(const at::Tensor& tensor);

  // Rank 0's `tensor` copied into every rank's, in place (same shape and dtype on every rank; any device:
  // the group's own is used on the way). One process: nothing.
  void broadcast(at::Tensor& tensor);

  // Rank 0 publishes a value under `key`; the others wait up to `timeout` for it (used to let rank 0
  // prepare the corpus while the others wait, however long that takes). A waiting rank whose `stop` flag
  // is set throws Interrupted.
  void publish(const std::string& key, const std::string& value);
  std::string await(const std::string& key, std::chrono::seconds timeout, const std::atomic<bool>* stop = nullptr);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace performer
