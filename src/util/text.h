// Text formatting and parsing shared by every layer: byte sizes, durations, comma lists, timestamps.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace performer {

std::string human_bytes(double bytes);
// "16GB", "512MB", "1e9" (bytes; units B, KB, MB, GB, TB, powers of 1000). Throws Error naming the text.
uint64_t parse_bytes(const std::string& text);
// The text up to its first line break (c10::Error and other messages append details on further lines).
std::string first_line(const std::string& text);
// "a,b,,c" -> {a, b, c}.
std::vector<std::string> split_list(const std::string& text);
// The one parser of integer lists given on the command line (--lengths, --layers, --heads): comma-separated
// whole numbers, each whole (digits after an optional minus: "512x", "256.9", "1e3", "+5", " 5" and empty items,
// "512," included, are refused, not cut short) and at least
// `min`; an Error names `what`: "--lengths: '512x' is not a positive whole number".
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what, int64_t min = INT64_MIN);
// Positions among n things (layers, heads) from indices counted from 0, or from the end when negative
// (-1 = the last, -n = the first); an index outside, or two naming the same one, is an Error naming `what`.
std::vector<int64_t> resolve_indices(const std::vector<int64_t>& indices, int64_t n, const std::string& what);
// "all" (every position in order), or parse_int_list then resolve_indices: the --layers / --heads convention.
std::vector<int64_t> parse_index_list(const std::string& text, int64_t n, const std::string& what);
std::string human_duration(double seconds);
// UTC time as ISO 8601, e.g. 2026-11-29T13:05:00Z (stored in corpus and checkpoint attributes).
std::string now_iso8601();

}  // namespace performer
