#pragma once
// Helpers for the tests of the bfloat16 kernels: every bfloat16 value in a range, and how far a
// correctly rounded bfloat16 may be from the exact value.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <torch/torch.h>

namespace adaptertune::testing {

/// Half the spacing of bfloat16 values at `value`'s magnitude: the most a bfloat16 rounded to
/// nearest is from `value` (bfloat16's subnormals, like float32's, are 2^-133 apart).
inline double half_bfloat16_spacing(double value) {
  if (std::abs(value) < std::ldexp(1.0, -126)) return std::ldexp(1.0, -134);
  return std::ldexp(1.0, std::ilogb(value) - 8);
}

/// Every finite bfloat16 value in [-limit, limit], in one tensor.
inline torch::Tensor every_bfloat16_within(float limit) {
  std::vector<int16_t> bits;
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const uint32_t word = b << 16;
    float value;
    std::memcpy(&value, &word, sizeof value);
    if (std::isfinite(value) && std::abs(value) <= limit) bits.push_back(static_cast<int16_t>(b));
  }
  return torch::tensor(bits, torch::kShort).view(torch::kBFloat16);
}

}  // namespace adaptertune::testing
