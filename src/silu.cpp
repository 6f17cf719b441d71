#include "silu.h"

#include <cstdint>
#include <vector>

#include <ATen/record_function.h>

#include "bfloat16_activation.h"
#include "bfloat16_bits.h"
#include "vector_clones.h"

namespace adaptertune {
namespace detail {
namespace {

// sigmoid(x) and 1 - sigmoid(x), each without cancellation: with e = exp(-|x|) and r = 1/(1+e),
// one is r and the other e r.
struct Sigmoid {
  float value;
  float complement;
};

inline Sigmoid sigmoid_at(float x) {
  const float magnitude = x < 0 ? -x : x;
  const float e = exp_nonpositive(-magnitude);
  const float r = 1.0f / (1.0f + e);
  return x >= 0 ? Sigmoid{r, e * r} : Sigmoid{e * r, r};
}

ADAPTERTUNE_VECTOR_CLONES
void silu_bfloat16_bits(const uint16_t* input, uint16_t* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float x = widen_bfloat16(input[i]);
    out[i] = round_to_bfloat16(x * sigmoid_at(x).value);
  }
}

ADAPTERTUNE_VECTOR_CLONES
void silu_and_derivative_bfloat16_bits(const uint16_t* input, uint16_t* out, uint16_t* derivative,
                                       int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float x = widen_bfloat16(input[i]);
    const Sigmoid s = sigmoid_at(x);
    out[i] = round_to_bfloat16(x * s.value);
    derivative[i] = round_to_bfloat16(s.value * (1.0f + x * s.complement));
  }
}

struct SiluKernels {
  static constexpr const char* kName = "silu";
  static at::Tensor value(const at::Tensor& input) { return silu_bfloat16(input); }
  static std::pair<at::Tensor, at::Tensor> value_and_derivative(const at::Tensor& input) {
    return silu_and_derivative_bfloat16(input);
  }
};

}  // namespace

at::Tensor silu_bfloat16(const at::Tensor& input) {
  check_bfloat16_input("silu_bfloat16", input);
  RECORD_FUNCTION("adaptertune::silu_bfloat16", std::vector<c10::IValue>());
  return map_bfloat16(input, silu_bfloat16_bits);
}

std::pair<at::Tensor, at::Tensor> silu_and_derivative_bfloat16(const at::Tensor& input) {
  check_bfloat16_input("silu_and_derivative_bfloat16", input);
  RECORD_FUNCTION("adaptertune::silu_and_derivative_bfloat16", std::vector<c10::IValue>());
  return map_bfloat16_with_derivative(input, silu_and_derivative_bfloat16_bits);
}

}  // namespace detail

at::Tensor swish(const at::Tensor& input) {
  if (!detail::bfloat16_kernel_applies(input)) return at::silu(input);
  return detail::bfloat16_activation<detail::SiluKernels>(input);
}

}  // namespace adaptertune
