// The compute device of a run and the memory on it: which device a config's runtime.device names, how
// much memory the device has, how much this process uses there now and at its peak.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>

namespace performer {

// The device choices of runtime.device and --device: "auto" (CUDA when available, else CPU), "cpu", "cuda".
enum class DeviceChoice { kAuto, kCpu, kCuda };
const std::vector<std::string>& device_choice_names();
// The name of a device's kind in that list: "cpu" or "cuda" (without an index).
const std::string& device_name(const c10::Device& device);
// The device a choice names; throws Error for another name (`what`: the option, for the message), or for
// "cuda" without a CUDA device.
c10::Device resolve_device(const std::string& name, const std::string& what = "runtime.device");

// Memory a run on `device` can use, in bytes. CUDA: the device's total memory. CPU: physical memory,
// lowered to the cgroup limit (containers) and the address-space limit (ulimit -v) when those are set.
uint64_t device_memory_bytes(const c10::Device& device);

// Memory of this process on a device: CPU resident set (now / peak), CUDA caching allocator (allocated /
// max allocated).
double memory_in_use(const c10::Device& device);
double peak_memory(const c10::Device& device);

}  // namespace performer
