#include "gelu.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include "adaptertune/error.h"
#include "bfloat16_bits.h"
#include "parallel_loops.h"
#include "shape_check.h"
#include "vector_clones.h"

namespace adaptertune {
namespace detail {
namespace {

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

// The standard normal's distribution and density at x: Phi(x) = (1 + erf(x / sqrt 2)) / 2 and
// phi(x). The tail 1 - erf(|z|) is Abramowitz and Stegun's 7.1.26, t (a1 + t (a2 + ...)) exp(-z^2)
// with t = 1 / (1 + p |z|) (absolute error below 1.5e-7), computed directly rather than as
// 1 - erf, so it keeps its precision where Phi is small; exp(-z^2) = exp(-x^2 / 2) is phi's
// exponential too, so one exponential serves both.
struct Normal {
  float cdf;
  float density;
};

inline Normal normal_at(float x) {
  constexpr float kSqrtHalf = 0.70710678118654752f;
  constexpr float kInvSqrtTwoPi = 0.39894228040143268f;
  const float z = x * kSqrtHalf;
  const float magnitude = z < 0 ? -z : z;
  const float t = 1.0f / (1.0f + 0.3275911f * magnitude);
  const float series =
      t * (0.254829592f +
           t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float gaussian = exp_nonpositive(-magnitude * magnitude);
  const float half_tail = 0.5f * series * gaussian;  // Phi(-|x|)
  return {z < 0 ? half_tail : 1.0f - half_tail, kInvSqrtTwoPi * gaussian};
}

// GELU's derivative, Phi(x) + x phi(x).
inline float gelu_derivative(float x) {
  const Normal normal = normal_at(x);
  return normal.cdf + x * normal.density;
}

ADAPTERTUNE_VECTOR_CLONES
void gelu_backward_float(const float* grad, const float* input, float* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = grad[i] * gelu_derivative(input[i]);
}

// bfloat16 as its bits (bfloat16_bits.h): GELU, x Phi(x), from the float32 value and rounded once.
// Where x < -4, at::gelu's 0.5 x (1 + erf(x / sqrt 2)) loses its digits to cancellation and gives
// 0 below about -5.5; Phi's tail computed directly keeps them, so there these results are the
// nearer ones, and elsewhere the two agree (tests).
ADAPTERTUNE_VECTOR_CLONES
void gelu_bfloat16_bits(const uint16_t* input, uint16_t* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float x = widen_bfloat16(input[i]);
    out[i] = round_to_bfloat16(x * normal_at(x).cdf);
  }
}

// The same, and GELU's derivative at each x beside it, from the same exponential and division.
ADAPTERTUNE_VECTOR_CLONES
void gelu_and_derivative_bfloat16_bits(const uint16_t* input, uint16_t* out, uint16_t* derivative,
                                       int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    const float x = widen_bfloat16(input[i]);
    const Normal normal = normal_at(x);
    out[i] = round_to_bfloat16(x * normal.cdf);
    derivative[i] = round_to_bfloat16(normal.cdf + x * normal.density);
  }
}

bool bfloat16_kernel_applies(const at::Tensor& input) {
  return input.defined() && input.device().is_cpu() && input.layout() == at::kStrided &&
         input.scalar_type() == at::kBFloat16 && input.is_contiguous();
}

void check_bfloat16_input(const char* function, const at::Tensor& input) {
  if (!bfloat16_kernel_applies(input)) {
    throw Error(std::string(function) + ": expected a contiguous bfloat16 CPU tensor; got " +
                (input.defined() ? input.toString() + " " + shape_string(input) +
                                       (input.is_contiguous() ? "" : " (not contiguous)")
                                 : "undefined"));
  }
}

uint16_t* bits_of(const at::Tensor& t) {
  return reinterpret_cast<uint16_t*>(t.data_ptr());
}

bool kernel_applies(const at::Tensor& grad, const at::Tensor& input) {
  return grad.defined() && input.defined() && input.device().is_cpu() && grad.device().is_cpu() &&
         input.scalar_type() == at::kFloat && grad.scalar_type() == at::kFloat &&
         grad.sizes() == input.sizes() && grad.is_contiguous() && input.is_contiguous() &&
         grad.layout() == at::kStrided && input.layout() == at::kStrided;
}

// Forward: at::gelu itself, so the output has its bits. Backward: the kernel above.
struct Gelu : public torch::autograd::Function<Gelu> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input) {
    ctx->save_for_backward({input});
    return at::gelu(input);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor input = ctx->get_saved_variables()[0];
    const at::Tensor& grad = grads[0];
    if (!grad.defined()) return {at::Tensor()};
    // A backward pass that records a graph (create_graph) needs LibTorch's differentiable one.
    if (!at::GradMode::is_enabled() && kernel_applies(grad, input))
      return {detail::gelu_erf_backward(grad, input)};
    return {at::gelu_backward(grad, input)};
  }
};

// Bfloat16: forward and the derivative in one pass (gelu_and_derivative_bfloat16()), the
// derivative kept instead of the input, so that backward is one multiplication, `grad * GELU'(x)`
// with one rounding (at::mul), instead of LibTorch's gelu_backward: over the main job's
// [2048, 1024] on 2 threads 0.19-0.23 ms against 0.76-0.84, for a forward pass of 0.64-0.73
// against at::gelu's 0.49-0.53. The derivative is held in bfloat16, so a gradient may differ from
// gelu_backward's in its last bit or two.
struct GeluBFloat16 : public torch::autograd::Function<GeluBFloat16> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input) {
    auto [out, derivative] = gelu_and_derivative_bfloat16(input);
    ctx->save_for_backward({derivative});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor derivative = ctx->get_saved_variables()[0];
    const at::Tensor& grad = grads[0];
    if (!grad.defined()) return {at::Tensor()};
    // The input is not kept, so the derivative cannot be differentiated again.
    if (at::GradMode::is_enabled()) {
      throw Error(
          "gelu: second derivatives through a bfloat16 GELU on the CPU are not supported "
          "(backward with create_graph); compute in float32 for them");
    }
    return {at::mul(grad, derivative)};
  }
};

}  // namespace

at::Tensor gelu_erf_backward(const at::Tensor& grad, const at::Tensor& input) {
  if (!kernel_applies(grad, input)) {
    throw Error(
        "gelu_erf_backward: expected contiguous float32 CPU tensors of one shape; got grad " +
        (grad.defined() ? grad.toString() + " " + shape_string(grad) : "undefined") +
        " and input " +
        (input.defined() ? input.toString() + " " + shape_string(input) : "undefined"));
  }
  RECORD_FUNCTION("adaptertune::gelu_erf_backward", std::vector<c10::IValue>());
  at::Tensor out = at::empty_like(input);
  const float* grad_data = grad.data_ptr<float>();
  const float* input_data = input.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  at::parallel_for(0, input.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    gelu_backward_float(grad_data + begin, input_data + begin, out_data + begin, end - begin);
  });
  return out;
}

at::Tensor gelu_bfloat16(const at::Tensor& input) {
  check_bfloat16_input("gelu_bfloat16", input);
  RECORD_FUNCTION("adaptertune::gelu_bfloat16", std::vector<c10::IValue>());
  at::Tensor out = at::empty_like(input);
  const uint16_t* input_bits = bits_of(input);
  uint16_t* out_bits = bits_of(out);
  at::parallel_for(0, input.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    gelu_bfloat16_bits(input_bits + begin, out_bits + begin, end - begin);
  });
  return out;
}

std::pair<at::Tensor, at::Tensor> gelu_and_derivative_bfloat16(const at::Tensor& input) {
  check_bfloat16_input("gelu_and_derivative_bfloat16", input);
  RECORD_FUNCTION("adaptertune::gelu_and_derivative_bfloat16", std::vector<c10::IValue>());
  at::Tensor out = at::empty_like(input);
  at::Tensor derivative = at::empty_like(input);
  const uint16_t* input_bits = bits_of(input);
  uint16_t* out_bits = bits_of(out);
  uint16_t* derivative_bits = bits_of(derivative);
  at::parallel_for(0, input.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    gelu_and_derivative_bfloat16_bits(input_bits + begin, out_bits + begin, derivative_bits + begin,
                                      end - begin);
  });
  return {out, derivative};
}

}  // namespace detail

at::Tensor gelu_erf(const at::Tensor& input) {
  const bool recorded = at::GradMode::is_enabled() && input.requires_grad();
  // Bfloat16 always through the library's kernel, with gradients or without, so that a pass
  // without them (gradient checkpointing's first run) gives the bits of one with them.
  if (detail::bfloat16_kernel_applies(input)) {
    return recorded ? detail::GeluBFloat16::apply(input) : detail::gelu_bfloat16(input);
  }
  if (!recorded || !input.device().is_cpu() || input.scalar_type() != at::kFloat)
    return at::gelu(input);
  return detail::Gelu::apply(input);
}

}  // namespace adaptertune
