// Text formatting and parsing shared by every layer: byte sizes, durations, comma lists, timestamps.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace performer {

std::string human_bytes(double bytes);
// "16GB", "512MB", "1e9" (bytes; units B, KB, MB, GB, TB, powers of 1000). Throws Error naming the text.
uint64_t parse_bytes(const std::string& text);
// "a,b,,c" -> {a, b, c}.
std::vector<std::string> split_list(const std::string& text);
std::string human_duration(double seconds);
// UTC time as ISO 8601, e.g. 2026-11-29T13:05:00Z (stored in corpus and checkpoint attributes).
std::string now_iso8601();

}  // namespace performer
