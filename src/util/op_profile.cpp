#include "util/clock.h"
#include "util/op_profile.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <map>
#include <unordered_map>

#include <unistd.h>

#include <torch/csrc/autograd/profiler_kineto.h>
#include <torch/version.h>

#include "util/error.h"
#include "util/files.h"
#include "util/text.h"

namespace performer {

namespace fs = std::filesystem;
namespace prof = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

struct OpProfile::Impl {
  std::unique_ptr<prof::ProfilerResult> result;
  std::chrono::steady_clock::time_point started;
  bool running = false;
};

OpProfile::OpProfile() : impl_(std::make_unique<Impl>()) {}

OpProfile::~OpProfile() {
  if (impl_->running) {
    try {
      prof::disableProfiler();
    } catch (...) {
    }
  }
}

void OpProfile::start() {
  if (impl_->running) throw Error("profiler: already running");
  const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
  const std::set<impl::ActivityType> activities{impl::ActivityType::CPU};
  try {
    prof::prepareProfiler(config, activities);
    prof::enableProfiler(config, activities);
  } catch (const std::exception& e) {
    throw Error(std::string("profiler: LibTorch ") + TORCH_VERSION + " could not start its kineto profiler: " +
                first_line(e.what()));
  }
  impl_->running = true;
  impl_->started = std::chrono::steady_clock::now();
}

void OpProfile::stop() {
  if (!impl_->running) throw Error("profiler: not running");
  impl_->result = prof::disableProfiler();
  impl_->running = false;
  region_s_ = seconds_since(impl_->started);
  std::vector<OpEvent> events;
  for (const prof::KinetoEvent& e : impl_->result->events()) {
    if (e.deviceType() != c10::DeviceType::CPU || e.isAsync()) continue;
#if TORCH_VERSION_MAJOR >= 2
    events.push_back({e.startThreadId(), e.startNs(), e.durationNs(), e.name()});
#else
    events.push_back({e.startThreadId(), e.startUs() * 1000, e.durationUs() * 1000, e.name()});
#endif
  }
  ops_ = self_times(std::move(events));
}

void OpProfile::save(const std::string& path) const {
  if (!impl_->result) throw Error("profiler: nothing recorded to save to " + path);
  AtomicFile out(path);
  impl_->result->save(out.temporary());
  out.commit();
}

void OpProfile::require_traces() {
  static const std::string problem = [] {
    try {
      OpProfile p;
      p.start();
      p.stop();
      const std::string path = (fs::temp_directory_path() / ("performer-trace-probe-" + std::to_string(::getpid()))).string();
      p.impl_->result->save(path);
      fs::remove(path);
      return std::string();
    } catch (const std::exception& e) {
      return first_line(e.what());
    }
  }();
  if (!problem.empty())
    throw Error(std::string("profiler: LibTorch ") + TORCH_VERSION + " cannot write profiler traces here (" + problem +
                "); the LibTorch 2.x build can (TORCH=pip scripts/setup.sh)");
}

std::vector<OpTime> self_times(std::vector<OpEvent> events) {
  // Per thread, by start and then longest first, so that a parent comes before the children it contains.
  std::sort(events.begin(), events.end(), [](const OpEvent& a, const OpEvent& b) {
    if (a.thread != b.thread) return a.thread < b.thread;
    if (a.start_ns != b.start_ns) return a.start_ns < b.start_ns;
    return a.duration_ns > b.duration_ns;
  });
  std::map<std::string, OpTime> by_name;
  struct Open {
    uint64_t end;
    OpTime* op;
    int64_t self_ns;
  };
  std::vector<Open> stack;
  std::unordered_map<std::string, int> open_names;  // how many of each name are on the stack
  auto close = [&] {
    Open& o = stack.back();
    o.op->self_s += static_cast<double>(o.self_ns) * 1e-9;
    if (--open_names[o.op->name] == 0) open_names.erase(o.op->name);
    stack.pop_back();
  };
  uint64_t thread = 0;
  for (const OpEvent& e : events) {
    if (e.thread != thread) {
      while (!stack.empty()) close();
      thread = e.thread;
    }
    const uint64_t end = e.start_ns + e.duration_ns;
    while (!stack.empty() && stack.back().end <= e.start_ns) close();
    if (!stack.empty()) stack.back().self_ns -= static_cast<int64_t>(e.duration_ns);
    OpTime& op = by_name[e.name];
    op.name = e.name;
    ++op.calls;
    if (open_names.count(e.name) == 0) op.total_s += static_cast<double>(e.duration_ns) * 1e-9;
    ++open_names[e.name];
    stack.push_back({end, &op, static_cast<int64_t>(e.duration_ns)});
  }
  while (!stack.empty()) close();
  std::vector<OpTime> ops;
  ops.reserve(by_name.size());
  for (auto& [name, op] : by_name) ops.push_back(std::move(op));
  std::stable_sort(ops.begin(), ops.end(), [](const OpTime& a, const OpTime& b) { return a.self_s > b.self_s; });
  return ops;
}

std::string describe_top_ops(const std::vector<OpTime>& ops, double region_s, size_t n) {
  std::string out;
  char line[512];
  for (size_t i = 0; i < std::min(n, ops.size()); ++i) {
    const OpTime& op = ops[i];
    std::snprintf(line, sizeof line, "%6.1f%%  %10.1f ms  %s (%lld calls)\n", 100.0 * op.self_s / region_s,
                  op.self_s * 1e3, op.name.c_str(), static_cast<long long>(op.calls));
    out += line;
  }
  return out;
}

bool is_matrix_product(const std::string& op_name) {
  // In-place forms (aten::baddbmm_, the chunked FAVOR core's) count as their operator.
  const std::string base = !op_name.empty() && op_name.back() == '_' ? op_name.substr(0, op_name.size() - 1) : op_name;
  static const char* const kProducts[] = {"aten::mm",     "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm",
                                          "aten::matmul", "aten::addmv", "aten::mv",  "aten::dot"};
  for (const char* name : kProducts)
    if (base == name) return true;
  return false;
}

double matrix_product_seconds(const std::vector<OpTime>& ops) {
  double s = 0;
  for (const OpTime& op : ops)
    if (is_matrix_product(op.name)) s += op.self_s;
  return s;
}

}  // namespace performer
