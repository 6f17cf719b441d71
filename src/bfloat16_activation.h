#pragma once
// What the library's bfloat16 activation kernels share (gelu.cpp, silu.cpp; private): a
// vectorisable exponential, the loops over bfloat16 bits on LibTorch's threads, and the autograd
// function that keeps an activation's derivative instead of its input.
//
// Only sources compiled with OpenMP may include it (parallel_loops.h).

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "adaptertune/error.h"
#include "parallel_loops.h"
#include "shape_check.h"

namespace adaptertune::detail {

// exp(y) for y <= 0: y = n ln 2 + r with |r| <= ln 2 / 2, e^r by its Taylor polynomial of
// degree 7 (truncation error below 6e-9, relative), 2^n put into the exponent bits. Below -87,
// where e^y < 2e-38, it is 0. Branch-free and without calls, so that loops over it vectorise.
inline float exp_nonpositive(float y) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2High = 0.693145751953125f;  // ln 2 in two parts: n * kLn2High is exact
  constexpr float kLn2Low = 1.42860682030941723e-6f;
  constexpr float kRoundToInteger = 12582912.0f;  // 1.5 * 2^23: x + it - it rounds x to an integer
  const float clamped = y > -87.0f ? y : -87.0f;  // a NaN too: no out-of-range int conversion
  const float n = (clamped * kLog2e + kRoundToInteger) - kRoundToInteger;
  const float r = (clamped - n * kLn2High) - n * kLn2Low;
  const float polynomial =
      1.0f +
      r * (1.0f +
           r * (1.0f / 2 +
                r * (1.0f / 6 +
                     r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  const int32_t exponent_bits = (static_cast<int32_t>(n) + 127) << 23;  // n >= -126: normal
  float two_to_n;
  std::memcpy(&two_to_n, &exponent_bits, sizeof two_to_n);
  return y > -87.0f ? polynomial * two_to_n : 0.0f;
}

/// Whether the bfloat16 kernels take `input`: a contiguous bfloat16 CPU tensor.
inline bool bfloat16_kernel_applies(const at::Tensor& input) {
  return input.defined() && input.device().is_cpu() && input.layout() == at::kStrided &&
         input.scalar_type() == at::kBFloat16 && input.is_contiguous();
}

/// Throws Error naming `function` and what `input` is where the bfloat16 kernels do not take it.
inline void check_bfloat16_input(const char* function, const at::Tensor& input) {
  if (!bfloat16_kernel_applies(input)) {
    throw Error(std::string(function) + ": expected a contiguous bfloat16 CPU tensor; got " +
                (input.defined() ? input.toString() + " " + shape_string(input) +
                                       (input.is_contiguous() ? "" : " (not contiguous)")
                                 : "undefined"));
  }
}

inline uint16_t* bfloat16_bits_of(const at::Tensor& t) {
  return reinterpret_cast<uint16_t*>(t.data_ptr());
}

/// `kernel(in, out, count)` over a checked bfloat16 `input`'s elements, in blocks on LibTorch's
/// threads; returns `out`.
template <typename Kernel>
at::Tensor map_bfloat16(const at::Tensor& input, Kernel kernel) {
  at::Tensor out = at::empty_like(input);
  const uint16_t* in = bfloat16_bits_of(input);
  uint16_t* result = bfloat16_bits_of(out);
  at::parallel_for(0, input.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    kernel(in + begin, result + begin, end - begin);
  });
  return out;
}

/// `kernel(in, out, derivative, count)` likewise; returns `out` and `derivative`.
template <typename Kernel>
std::pair<at::Tensor, at::Tensor> map_bfloat16_with_derivative(const at::Tensor& input,
                                                               Kernel kernel) {
  at::Tensor out = at::empty_like(input);
  at::Tensor derivative = at::empty_like(input);
  const uint16_t* in = bfloat16_bits_of(input);
  uint16_t* result = bfloat16_bits_of(out);
  uint16_t* slope = bfloat16_bits_of(derivative);
  at::parallel_for(0, input.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    kernel(in + begin, result + begin, slope + begin, end - begin);
  });
  return {out, derivative};
}

/// An element-wise activation with autograd whose forward pass also computes its derivative and
/// keeps that (in the input's dtype, the input's memory) instead of the input, so that backward
/// is one multiplication, `grad * derivative`, rounded once (at::mul). `Kernels` has
/// `static std::pair<at::Tensor, at::Tensor> value_and_derivative(const at::Tensor&)` and a
/// `kName` for errors. The input is not kept, so second derivatives (backward with
/// create_graph) cannot be had: they throw Error rather than come out wrong. Reached through
/// bfloat16_activation() below.
template <typename Kernels>
struct KeptDerivative : public torch::autograd::Function<KeptDerivative<Kernels>> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input) {
    auto [out, derivative] = Kernels::value_and_derivative(input);
    ctx->save_for_backward({derivative});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor derivative = ctx->get_saved_variables()[0];
    const at::Tensor& grad = grads[0];
    if (!grad.defined()) return {at::Tensor()};
    if (at::GradMode::is_enabled()) {
      throw Error(std::string(Kernels::kName) +
                  ": second derivatives through a bfloat16 activation on the CPU are not "
                  "supported (backward with create_graph); compute in float32 for them");
    }
    return {at::mul(grad, derivative)};
  }
};

/// The activation `Kernels` computes, for an input the bfloat16 kernels take
/// (bfloat16_kernel_applies()): through KeptDerivative where autograd records it, else the
/// kernel's value alone (`static at::Tensor value(const at::Tensor&)`). Both ways run the same
/// kernel, so that a pass without gradients (gradient checkpointing's first run) gives the bits
/// of one with them.
template <typename Kernels>
at::Tensor bfloat16_activation(const at::Tensor& input) {
  if (at::GradMode::is_enabled() && input.requires_grad()) {
    return KeptDerivative<Kernels>::apply(input);
  }
  return Kernels::value(input);
}

}  // namespace adaptertune::detail
