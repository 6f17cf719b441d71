#include "gelu.h"

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include "adaptertune/error.h"
#include "bfloat16_activation.h"
#include "bfloat16_bits.h"
#include "parallel_loops.h"
#include "shape_check.h"
#include "vector_clones.h"

namespace adaptertune {
namespace detail {
namespace {

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

// Bfloat16 with autograd: the derivative kept instead of the input (KeptDerivative in
// bfloat16_activation.h), so that backward is one multiplication, `grad * GELU'(x)` with one
// rounding, instead of LibTorch's gelu_backward: over the main job's [2048, 1024] on 2 threads
// 0.19-0.23 ms against 0.76-0.84, for a forward pass of 0.64-0.73 against at::gelu's 0.49-0.53.
struct GeluKernels {
  static constexpr const char* kName = "gelu";
  static at::Tensor value(const at::Tensor& input) { return gelu_bfloat16(input); }
  static std::pair<at::Tensor, at::Tensor> value_and_derivative(const at::Tensor& input) {
    return gelu_and_derivative_bfloat16(input);
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
  return map_bfloat16(input, gelu_bfloat16_bits);
}

std::pair<at::Tensor, at::Tensor> gelu_and_derivative_bfloat16(const at::Tensor& input) {
  check_bfloat16_input("gelu_and_derivative_bfloat16", input);
  RECORD_FUNCTION("adaptertune::gelu_and_derivative_bfloat16", std::vector<c10::IValue>());
  return map_bfloat16_with_derivative(input, gelu_and_derivative_bfloat16_bits);
}

}  // namespace detail

at::Tensor gelu_erf(const at::Tensor& input) {
  if (detail::bfloat16_kernel_applies(input)) {
    return detail::bfloat16_activation<detail::GeluKernels>(input);
  }
  const bool recorded = at::GradMode::is_enabled() && input.requires_grad();
  if (!recorded || !input.device().is_cpu() || input.scalar_type() != at::kFloat)
    return at::gelu(input);
  return detail::Gelu::apply(input);
}

}  // namespace adaptertune
