// The monotonic clock every timing in the project uses, and seconds elapsed on it.
#pragma once
#include <chrono>

namespace performer {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace performer
