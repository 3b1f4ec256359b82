// Gradient sums across data-parallel ranks, overlapped with backward.
//
// The parameters are grouped into buckets of about bucket_bytes (runtime.bucket_mb), in reverse order of registration (the
// order backward produces their gradients: last layer first). Hooks on the parameters' gradient
// accumulators (which run once a gradient is final in .grad) launch a bucket's all-reduce, flattened into
// one tensor, as soon as all of its gradients are final, while backward goes on with the earlier
// layers. Buckets are launched strictly in index order, so every rank issues the same collectives in the
// same order even when one of them computed nothing this step (it reduces zeros).
//
// A step: arm() before the rank's last backward of the step (earlier micro-batches only accumulate),
// then finish(), which launches what is left, waits, and writes the sums back into .grad.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Tensor.h>

#include "train/communicator.h"

namespace torch::autograd {
struct Node;
}

namespace performer {

class GradientSync {
 public:
  GradientSync(std::vector<at::Tensor> params, Communicator& comm, int64_t bucket_bytes);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  void arm();
  void finish();
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  double wait_seconds() const { return wait_seconds_; }        // total time blocked in finish()
  int64_t launched_during_backward() const { return early_; }  // buckets started by hooks, over all steps

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    int64_t numel = 0;
    int64_t ready = 0;           // params whose gradient is final this step
    at::Tensor flat;
    std::unique_ptr<Communicator::Pending> pending;
  };
  void on_gradient(size_t param);  // hook
  void launch_ready();             // launches buckets in order while the next one is complete
  void launch(Bucket& b);

  std::vector<at::Tensor> params_;
  std::vector<size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;  // kept alive so the hooks stay
  Communicator& comm_;
  bool armed_ = false;
  size_t next_launch_ = 0;
  double wait_seconds_ = 0;
  int64_t early_ = 0;
};

}  // namespace performer
