// Stable 64-bit hashes and a seedable generator: results must not depend on the platform, the standard
// library or the LibTorch version, because splits, shuffles and masks are reproduced across machines.
#pragma once
#include <cstdint>
#include <string_view>

namespace performer {

// FNV-1a over the bytes, then a SplitMix64 finalizer for good avalanche in every bit.
uint64_t hash64(std::string_view bytes, uint64_t seed = 0);

// SplitMix64 finalizer: a bijective mix of one 64-bit word.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Derives a seed from a base seed and a list of integers (e.g. seed, epoch, batch index).
inline uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b = 0, uint64_t c = 0) {
  return mix64(mix64(mix64(seed ^ mix64(a)) ^ b) ^ c);
}

// xoshiro256** generator, seeded through SplitMix64. Small, fast and identical everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  // Uniform double in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the bias is below 2^-32 for n < 2^32).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

 private:
  uint64_t s_[4];
};

// Fisher-Yates shuffle with Rng (std::shuffle's algorithm is implementation-defined).
template <class It>
void shuffle(It first, It last, Rng& rng) {
  auto n = last - first;
  for (decltype(n) i = n - 1; i > 0; --i) {
    auto j = static_cast<decltype(n)>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(first[i], first[j]);
  }
}

}  // namespace performer
