#include "train/communicator.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/version.h>
#if defined(PERFORMER_CUDA) && defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define PERFORMER_NCCL 1
#endif
#include <torch/torch.h>

#include <fmt/format.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "train/rendezvous.h"
#include "util/error.h"
#include "util/names.h"
#include "util/process.h"
#include "util/text.h"

namespace performer {

namespace {

// LibTorch 2.x runs collectives on a c10d::Backend (ProcessGroup became its dispatcher); 1.13 on the
// ProcessGroup itself. Both have the same allreduce/barrier/Work interface used here.
#if TORCH_VERSION_MAJOR >= 2
using Group = c10d::Backend;
#else
using Group = c10d::ProcessGroup;
#endif

constexpr double kReportSeconds = 5;  // how long a failing rank waits for the others to name themselves
constexpr double kStoreGrace = 2;     // beyond it, for the store's replies

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr == "::1" || addr.rfind("127.", 0) == 0;
}

std::shared_ptr<::gloo::transport::Device> gloo_device(const World& w) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
    return c10d::ProcessGroupGloo::createDeviceForInterface(ifname);
  if (is_loopback(w.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  // This host's address on the route to MASTER_ADDR (on rank 0, MASTER_ADDR itself): Gloo listens there
  // only, and the ranks reach each other the way they reach the store. Gloo's own default, the address of
  // the host name, is 127.0.1.1 under a Debian-style /etc/hosts, which no other host can reach.
  // A loopback answer (MASTER_ADDR is this host's name, mapped to 127.0.1.1 in /etc/hosts) serves a job
  // on this host only; the other hosts could not reach it.
  const std::string local = local_address_towards(w.master_addr);
  if (!local.empty() && (w.local_size == w.size || !is_loopback(local)))
    return c10d::ProcessGroupGloo::createDeviceForHostname(local);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

struct Communicator::Impl {
  World world;
  c10::Device device{c10::kCPU};  // where the process group's tensors live
  std::string backend = "none";
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Group> group;
  bool store_unreachable = false;  // a store call never returned (who_is_gone)

  // Names the ranks that did not report within kReportSeconds, after this one reported itself. The store's
  // replies may never come when the network to its host is down (a store call then waits in recv for
  // good, measured with a veth link cut: tests/test_launchers.cpp), so the exchange runs on a thread of its
  // own, given kReportSeconds + kStoreGrace; past that the store's host is named.
  std::string who_is_gone() {
    const std::string unreachable =
        (world.agent_store ? std::string("torchrun's agent, which hosts the rendezvous store, ")
                           : std::string("rank 0, which hosts the rendezvous store, ")) +
        fmt::format("did not answer within {:g} s (its host or the network to it is down)", kReportSeconds + kStoreGrace);
    if (store_unreachable) return unreachable;  // a store call of an earlier failure may still be waiting
    struct Answer {
      std::mutex m;
      std::condition_variable cv;
      bool done = false;
      std::string text;
    };
    auto answer = std::make_shared<Answer>();
    try {
      std::thread([answer, store = store, w = world] {
        std::string text = ranks_not_reporting(*store, w);
        std::lock_guard<std::mutex> lock(answer->m);
        answer->text = std::move(text);
        answer->done = true;
        answer->cv.notify_all();
      }).detach();  // left behind when the store never answers: the process is ending with this error
    } catch (const std::exception& e) {
      return std::string("the other ranks could not be asked (") + first_line(e.what()) + ")";
    }
    std::unique_lock<std::mutex> lock(answer->m);
    if (answer->cv.wait_for(lock, std::chrono::duration<double>(kReportSeconds + kStoreGrace), [&] { return answer->done; }))
      return answer->text;
    store_unreachable = true;
    return unreachable;
  }

  static std::string ranks_not_reporting(c10d::Store& store, const World& world) {
    const std::string prefix = "performer/failed/";
    try {
      store.set(prefix + std::to_string(world.rank), std::vector<uint8_t>{1});
      std::vector<bool> seen(static_cast<size_t>(world.size), false);
      seen[static_cast<size_t>(world.rank)] = true;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(kReportSeconds);
      std::vector<std::string> gone;
      for (;;) {
        gone.clear();
        for (int r = 0; r < world.size; ++r) {
          if (!seen[static_cast<size_t>(r)] && store.check({prefix + std::to_string(r)})) seen[static_cast<size_t>(r)] = true;
          if (!seen[static_cast<size_t>(r)]) gone.push_back(std::to_string(r));
        }
        if (gone.empty() || std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (gone.empty()) return "every rank is still running";
      // With more than 2 ranks, a live rank blocked on the dead one may report too late to be told apart.
      return (gone.size() == 1 ? "rank " : "ranks ") + join(gone, ", ") + " did not answer within " +
             fmt::format("{:g}", kReportSeconds) + " s (died, killed or hung)";
    } catch (const std::exception&) {
      return world.agent_store ? std::string("the rendezvous store (torchrun's agent) is gone too")
                               : std::string("rank 0, which hosts the rendezvous store, is gone");
    }
  }

  [[noreturn]] void fail(const std::string& what, const std::exception& e) {
    throw Error("rank " + std::to_string(world.rank) + " of " + std::to_string(world.size) + ": " + what +
                " failed: " + first_line(e.what()) + "; " + who_is_gone());
  }

  void reduce(std::vector<double>& values, c10d::ReduceOp op, const char* what) {
    if (group == nullptr || values.empty()) return;
    at::Tensor t = torch::tensor(values, torch::kDouble).to(device);
    std::vector<at::Tensor> ts{t};
    c10d::AllreduceOptions o;
    o.reduceOp = op;
    try {
      group->allreduce(ts, o)->wait();
    } catch (const std::exception& e) {
      fail(what, e);
    }
    t = t.cpu();
    for (size_t i = 0; i < values.size(); ++i) values[i] = t.data_ptr<double>()[i];
  }
};

namespace {
class PendingWork : public Communicator::Pending {
 public:
  PendingWork(Communicator::Impl* impl, c10::intrusive_ptr<c10d::Work> work) : impl_(impl), work_(std::move(work)) {}
  void wait() override {
    try {
      work_->wait();
    } catch (const std::exception& e) {
      impl_->fail("gradient all-reduce", e);
    }
  }

 private:
  Communicator::Impl* impl_;
  c10::intrusive_ptr<c10d::Work> work_;
};
}  // namespace

Communicator::Communicator() : impl_(std::make_unique<Impl>()) {}
Communicator::~Communicator() = default;
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;

Communicator::Communicator(const World& world, Backend backend, const c10::Device& device, double timeout_seconds,
                           const std::atomic<bool>* stop, const std::string& job)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.world = world;
  if (!world.distributed()) return;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  if (backend == Backend::kAuto) backend = device.is_cuda() ? Backend::kNccl : Backend::kGloo;
#ifndef PERFORMER_NCCL
  if (backend == Backend::kNccl) {
    if (device.is_cuda())
      throw Error("runtime.backend nccl: this LibTorch (" TORCH_VERSION ") was built without NCCL; use runtime.backend=gloo");
    throw Error("runtime.backend nccl needs runtime.device cuda (NCCL reduces CUDA tensors); use gloo on CPU");
  }
#else
  if (backend == Backend::kNccl && !device.is_cuda())
    throw Error("runtime.backend nccl needs runtime.device cuda (NCCL reduces CUDA tensors); use gloo on CPU");
#endif
  // Steps 1-3 of the start (train/rendezvous.h): the store, the job's identity, every rank.
  Rendezvous rendezvous(world, timeout_seconds, stop, job);
  m.store = rendezvous.store();
  rendezvous.forming_group(backend_name(backend));
  try {
    if (backend == Backend::kGloo) {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      o->devices.push_back(gloo_device(world));
      m.group = c10::make_intrusive<c10d::ProcessGroupGloo>(m.store, world.rank, world.size, o);
      m.backend = "gloo";
      m.device = c10::Device(c10::kCPU);
    }
#ifdef PERFORMER_NCCL
    if (backend == Backend::kNccl) {
      // Without blocking wait, Work::wait() on NCCL only orders streams and never fails: a dead peer would
      // end in the watchdog's abort (2.x) or a hang. With it, wait() throws at runtime.timeout_s and the
      // message names the ranks that did not answer. Set unless the user chose otherwise.
      ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
      ::setenv("NCCL_BLOCKING_WAIT", "1", 0);
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      m.group = c10::make_intrusive<c10d::ProcessGroupNCCL>(m.store, world.rank, world.size, o);
      m.backend = "nccl";
      m.device = device;
    }
#endif
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(world.rank) + ": cannot start the " + backend_name(backend) +
                " process group: " + first_line(e.what()));
  }
  std::vector<double> hello{1.0};
  m.reduce(hello, c10d::ReduceOp::SUM, "the first collective");
  if (static_cast<int>(hello[0]) != world.size)
    throw Error("rank " + std::to_string(world.rank) + ": the first collective counted " + fmt::format("{:g}", hello[0]) +
                " ranks, expected " + std::to_string(world.size));
}

const World& Communicator::world() const { return impl_->world; }
std::string Communicator::backend() const { return impl_->backend; }

void Communicator::sum(std::vector<double>& v) { impl_->reduce(v, c10d::ReduceOp::SUM, "an all-reduce (sum)"); }
void Communicator::max(std::vector<double>& v) { impl_->reduce(v, c10d::ReduceOp::MAX, "an all-reduce (max)"); }
void Communicator::min(std::vector<double>& v) { impl_->reduce(v, c10d::ReduceOp::MIN, "an all-reduce (min)"); }

std::unique_ptr<Communicator::Pending> Communicator::sum_async(const at::Tensor& tensor) {
  Impl& m = *impl_;
  if (m.group == nullptr) throw Error("sum_async: one process has nothing to reduce");
  std::vector<at::Tensor> ts{tensor};
  try {
    return std::make_unique<PendingWork>(&m, m.group->allreduce(ts));
  } catch (const std::exception& e) {
    m.fail("gradient all-reduce", e);
  }
}

void Communicator::broadcast(at::Tensor& tensor) {
  Impl& m = *impl_;
  if (m.group == nullptr) return;
  at::Tensor buffer = tensor.to(m.device).contiguous();  // `tensor` itself when it already is both
  std::vector<at::Tensor> ts{buffer};
  c10d::BroadcastOptions o;
  o.rootRank = 0;
  try {
    m.group->broadcast(ts, o)->wait();
  } catch (const std::exception& e) {
    m.fail("a broadcast from rank 0", e);
  }
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

void Communicator::publish(const std::string& key, const std::string& value) {
  if (impl_->store == nullptr) return;
  try {
    impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  } catch (const std::exception& e) {
    impl_->fail("publishing '" + key + "'", e);
  }
}

std::string Communicator::await(const std::string& key, std::chrono::seconds timeout, const std::atomic<bool>* stop) {
  Impl& m = *impl_;
  if (m.store == nullptr) return "";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  try {
    // Polled rather than one blocking wait, so that a stop signal is seen while rank 0 works.
    while (!m.store->check({key})) {
      if (stop != nullptr && stop->load()) throw Interrupted("rank " + std::to_string(m.world.rank) + ": interrupted while waiting for '" + key + "'");
      if (std::chrono::steady_clock::now() > deadline) throw Error("nothing after " + std::to_string(timeout.count()) + " s");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const std::vector<uint8_t> v = m.store->get(key);
    return std::string(v.begin(), v.end());
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    m.fail("waiting for '" + key + "'", e);
  }
}

}  // namespace performer
