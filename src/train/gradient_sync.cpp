#include "train/gradient_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <chrono>

#include "util/clock.h"
#include "util/error.h"

namespace performer {

namespace {

// Calls back once the gradient accumulator of a parameter has written its .grad.
class AfterAccumulate : public torch::autograd::FunctionPostHook {
 public:
  explicit AfterAccumulate(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

}  // namespace

GradientSync::GradientSync(std::vector<at::Tensor> params, Communicator& comm, int64_t bucket_bytes)
    : params_(std::move(params)), bucket_of_(params_.size()), comm_(comm) {
  if (params_.empty()) throw Error("gradient sync: no parameters");
  // Buckets in reverse registration order: the first bucket holds the gradients backward finishes first.
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    if (buckets_.empty() || (buckets_.back().numel * p.element_size() >= bucket_bytes) ||
        p.scalar_type() != params_[buckets_.back().params.front()].scalar_type())
      buckets_.emplace_back();
    buckets_.back().params.push_back(k);
    buckets_.back().numel += p.numel();
    bucket_of_[k] = buckets_.size() - 1;
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[k]);
    if (acc == nullptr) throw Error("gradient sync: a parameter without a gradient accumulator (requires_grad off?)");
    acc->add_post_hook(std::make_unique<AfterAccumulate>([this, k] { on_gradient(k); }));
    accumulators_.push_back(std::move(acc));
  }
}

GradientSync::~GradientSync() = default;

void GradientSync::arm() { armed_ = true; }

void GradientSync::on_gradient(size_t param) {
  if (!armed_) return;
  Bucket& b = buckets_[bucket_of_[param]];
  ++b.ready;
  if (b.ready == static_cast<int64_t>(b.params.size())) {
    const size_t before = next_launch_;
    launch_ready();
    early_ += static_cast<int64_t>(next_launch_ - before);
  }
}

void GradientSync::launch_ready() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].ready == static_cast<int64_t>(buckets_[next_launch_].params.size()))
    launch(buckets_[next_launch_++]);
}

void GradientSync::launch(Bucket& b) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> pieces;
  pieces.reserve(b.params.size());
  for (size_t k : b.params) {
    const at::Tensor& p = params_[k];
    const at::Tensor& g = p.grad();
    pieces.push_back(g.defined() ? g.reshape({-1}) : torch::zeros({p.numel()}, p.options()));  // none this step: 0
  }
  b.flat = torch::cat(pieces);
  b.pending = comm_.sum_async(b.flat);
}

void GradientSync::finish() {
  const auto t0 = std::chrono::steady_clock::now();
  armed_ = false;
  while (next_launch_ < buckets_.size()) launch(buckets_[next_launch_++]);  // in order, as every rank does
  torch::NoGradGuard no_grad;
  for (Bucket& b : buckets_) {
    b.pending->wait();
    b.pending.reset();
    int64_t offset = 0;
    for (size_t k : b.params) {
      at::Tensor& p = params_[k];
      at::Tensor sum = b.flat.narrow(0, offset, p.numel()).view(p.sizes());
      offset += p.numel();
      if (p.grad().defined())
        p.mutable_grad().copy_(sum);
      else
        p.mutable_grad() = sum.clone();
    }
    b.flat = at::Tensor();
    b.ready = 0;
  }
  next_launch_ = 0;  // the next step starts over, armed or not
  wait_seconds_ += seconds_since(t0);
}

}  // namespace performer
