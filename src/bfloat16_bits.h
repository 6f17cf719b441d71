#pragma once
// bfloat16 as its 16 bits, for the library's vectorised element-wise kernels (private).
//
// c10::BFloat16's conversions round with a NaN branch per value, which keeps loops over them from
// vectorising; these are the same conversions as plain integer operations on the bits, so loops
// over them vectorise and give the same results as the c10 type.

#include <cstdint>
#include <cstring>

namespace adaptertune::detail {

/// The float32 value of the bfloat16 `bits` (exact: bfloat16 is float32's upper half).
inline float widen_bfloat16(uint16_t bits) {
  const uint32_t word = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &word, sizeof value);
  return value;
}

/// `value` rounded to the nearest bfloat16, ties to even, as c10::BFloat16 rounds (a NaN becomes
/// the quiet NaN 0x7FC0).
inline uint16_t round_to_bfloat16(float value) {
  uint32_t word;
  std::memcpy(&word, &value, sizeof word);
  const auto rounded = static_cast<uint16_t>((word + 0x7FFFu + ((word >> 16) & 1u)) >> 16);
  return value != value ? static_cast<uint16_t>(0x7FC0) : rounded;
}

}  // namespace adaptertune::detail
