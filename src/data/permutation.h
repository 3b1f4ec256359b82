// A seeded bijection of [0, n) computed one element at a time, in O(1) memory: the epoch order of a corpus
// of any size, without a shuffled array of its indices.
//
// A balanced Feistel network on the smallest even number of bits b with 2^b >= n (4 rounds, round
// function mix64 of (seed, round, half)) is a permutation of [0, 2^b); "cycle walking" applies it again
// while the value is >= n, which restricts it to a permutation of [0, n) (the walk from i < n returns to
// [0, n) because i's cycle passes through it). Since 2^b < 4n, a walk takes fewer than 4 steps on average.
#pragma once
#include <cstdint>

#include "util/hash.h"

namespace performer {

class Permutation {
 public:
  Permutation(uint64_t n, uint64_t seed) : n_(n), seed_(seed) {
    while ((uint64_t{1} << (2 * half_)) < n_) ++half_;
    mask_ = (uint64_t{1} << half_) - 1;
  }
  uint64_t size() const { return n_; }
  // The i-th element of the permutation, i < n.
  uint64_t operator()(uint64_t i) const {
    uint64_t x = feistel(i);
    while (x >= n_) x = feistel(x);
    return x;
  }

 private:
  uint64_t feistel(uint64_t x) const {
    uint64_t left = x >> half_, right = x & mask_;
    for (uint64_t round = 0; round < kRounds; ++round) {
      const uint64_t next = left ^ (mix64(seed_ ^ mix64(round * 0x100000001b3ULL + right)) & mask_);
      left = right;
      right = next;
    }
    return (left << half_) | right;
  }
  static constexpr uint64_t kRounds = 4;
  uint64_t n_, seed_;
  int half_ = 1;
  uint64_t mask_ = 1;
};

}  // namespace performer
