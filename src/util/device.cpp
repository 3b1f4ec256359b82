#include "util/device.h"

#include <sys/resource.h>
#include <torch/cuda.h>
#ifdef PERFORMER_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

#include <algorithm>
#include <fstream>

#include "util/error.h"
#include "util/names.h"
#include "util/process.h"

namespace performer {

namespace {

#ifdef PERFORMER_CUDA
int index_of(const c10::Device& device) { return device.has_index() ? device.index() : 0; }
#endif

// The memory limit of this process's cgroup (v2 "memory.max", v1 "memory.limit_in_bytes"); 0 when none.
uint64_t cgroup_memory_limit() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string text;
    if (in >> text && !text.empty() && text != "max") {
      try {
        return std::stoull(text);
      } catch (const std::exception&) {
      }
    }
  }
  return 0;
}

}  // namespace

const std::vector<std::string>& device_choice_names() {
  static const std::vector<std::string> names{"auto", "cpu", "cuda"};
  return names;
}

const std::string& device_name(const c10::Device& device) {
  return name_of(device.is_cuda() ? DeviceChoice::kCuda : DeviceChoice::kCpu, device_choice_names());
}

c10::Device resolve_device(const std::string& name, const std::string& what) {
  switch (parse_name<DeviceChoice>(name, device_choice_names(), what)) {
    case DeviceChoice::kCpu: return c10::kCPU;
    case DeviceChoice::kCuda:
      if (!torch::cuda::is_available()) throw Error(what + " cuda: no CUDA device is available (use cpu or auto)");
      return c10::kCUDA;
    case DeviceChoice::kAuto: break;
  }
  return torch::cuda::is_available() ? c10::Device(c10::kCUDA) : c10::Device(c10::kCPU);
}

uint64_t device_memory_bytes(const c10::Device& device) {
#ifdef PERFORMER_CUDA
  if (device.is_cuda()) {
    size_t free_b = 0, total_b = 0;
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(index_of(device)));
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return 0;
    return static_cast<uint64_t>(total_b);
  }
#endif
  (void)device;
  uint64_t bytes = physical_memory_bytes();
  const uint64_t cgroup = cgroup_memory_limit();
  if (cgroup > 0) bytes = std::min(bytes, cgroup);
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    bytes = std::min<uint64_t>(bytes, static_cast<uint64_t>(rl.rlim_cur));
  return bytes;
}

double memory_in_use(const c10::Device& device) {
#ifdef PERFORMER_CUDA
  if (device.is_cuda())
    return static_cast<double>(c10::cuda::CUDACachingAllocator::getDeviceStats(index_of(device)).allocated_bytes[0].current);
#endif
  (void)device;
  return static_cast<double>(current_rss_bytes());
}

double peak_memory(const c10::Device& device) {
#ifdef PERFORMER_CUDA
  if (device.is_cuda())
    return static_cast<double>(c10::cuda::CUDACachingAllocator::getDeviceStats(index_of(device)).allocated_bytes[0].peak);
#endif
  (void)device;
  return static_cast<double>(peak_rss_bytes());
}

}  // namespace performer
