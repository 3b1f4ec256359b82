// The compute device of a run and the memory on it: which device a config's runtime.device names, how
// much memory the device has, how much this process uses there now and at its peak.
#pragma once
#include <cstdint>
#include <string>

#include <c10/core/Device.h>

namespace performer {

// "auto" (CUDA when available, else CPU), "cpu" or "cuda"; throws Error for anything else, or for "cuda"
// without a CUDA device.
c10::Device resolve_device(const std::string& name);

// Memory a run on `device` can use, in bytes. CUDA: the device's total memory. CPU: physical memory,
// lowered to the cgroup limit (containers) and the address-space limit (ulimit -v) when those are set.
uint64_t device_memory_bytes(const c10::Device& device);

// Memory of this process on a device: CPU resident set (now / peak), CUDA caching allocator (allocated /
// max allocated).
double memory_in_use(const c10::Device& device);
double peak_memory(const c10::Device& device);

}  // namespace performer
