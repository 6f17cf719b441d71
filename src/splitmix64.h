#pragma once
// SplitMix64's output function, for random numbers that need no generator state: hashed dropout
// masks (one value per element) and seeds derived from several numbers.

#include <cstdint>

namespace adaptertune::detail {

/// A well-mixed 64-bit value per (seed, counter) (it passes BigCrush as a sequence), with no state
/// between calls, so any thread can compute any counter's value.
inline uint64_t splitmix64(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + (counter + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace adaptertune::detail
