// The exact GELU's float32 backward kernel: its accuracy against the derivative computed in
// double, its agreement with LibTorch's gelu_backward, special values, where gelu_erf() uses it
// (and where LibTorch's backward), and its refusals.
#include "gelu.h"

#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/error.h"

namespace adaptertune {
namespace {

double exact_derivative(double x) {
  return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) +
         x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
}

TEST(GeluBackward, Float32IsAsCloseToTheExactDerivativeAsLibTorchs) {
  // Every float32 step of 1e-5 over [-10, 10], in one call: several threads' blocks, and every
  // vector lane's position.
  const auto x = torch::linspace(-10, 10, 2000001, torch::kFloat);
  const auto ones = torch::ones_like(x);
  const auto ours = detail::gelu_erf_backward(ones, x);
  const auto libtorch = at::gelu_backward(ones, x);
  const float* xs = x.data_ptr<float>();
  const float* got = ours.data_ptr<float>();
  const float* theirs = libtorch.data_ptr<float>();
  double worst = 0, worst_libtorch = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double exact = exact_derivative(xs[i]);
    worst = std::max(worst, std::abs(got[i] - exact));
    worst_libtorch = std::max(worst_libtorch, std::abs(theirs[i] - exact));
  }
  // The error of evaluating the series in float32 near x = 0, as LibTorch's (3.0e-7 here).
  EXPECT_LT(worst, 3.2e-7) << "LibTorch's own error here: " << worst_libtorch;
  // The gradient is the derivative times grad, in float32.
  const auto grad = torch::randn_like(x);
  EXPECT_TRUE(torch::allclose(detail::gelu_erf_backward(grad, x), at::gelu_backward(grad, x), 0,
                              5e-7 * 5));  // |grad| below 5 here
}

TEST(GeluBackward, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const auto x = torch::tensor({0.0f, -0.0f, 20.0f, -20.0f, 1e30f, -1e30f, nan, inf, -inf});
  const auto d = detail::gelu_erf_backward(torch::ones_like(x), x);
  const auto theirs = at::gelu_backward(torch::ones_like(x), x);
  const float* got = d.data_ptr<float>();
  EXPECT_FLOAT_EQ(got[0], 0.5f);
  EXPECT_FLOAT_EQ(got[1], 0.5f);
  EXPECT_EQ(got[2], 1.0f);
  EXPECT_EQ(got[3], 0.0f);
  EXPECT_EQ(got[4], 1.0f);
  EXPECT_EQ(got[5], 0.0f);
  // NaN and the infinities give NaN, as LibTorch's (inf times exp(-inf)).
  for (int i = 6; i < 9; ++i) {
    EXPECT_TRUE(std::isnan(got[i])) << i;
    EXPECT_TRUE(std::isnan(theirs[i].item<float>())) << i;
  }
}

TEST(GeluBackward, GeluErfForwardIsAtGeluAndItsGradientTheKernels) {
  const auto x = torch::randn({64, 96}).requires_grad_();
  const auto y = gelu_erf(x);
  EXPECT_TRUE(torch::equal(y, at::gelu(x.detach())));
  const auto grad = torch::randn({64, 96});
  y.backward(grad);
  EXPECT_TRUE(torch::equal(x.grad(), detail::gelu_erf_backward(grad, x.detach())));
  // bfloat16: LibTorch's forward and backward, bit for bit.
  const auto low = torch::randn({64, 96}).to(torch::kBFloat16).requires_grad_();
  const auto low_grad = torch::randn({64, 96}).to(torch::kBFloat16);
  gelu_erf(low).backward(low_grad);
  EXPECT_TRUE(torch::equal(low.grad(), at::gelu_backward(low_grad, low.detach())));
  // A transposed (non-contiguous) input: LibTorch's backward, exactly.
  const auto base = torch::randn({32, 48}).requires_grad_();
  const auto transposed = base.t();
  const auto transposed_grad = torch::randn({48, 32});
  gelu_erf(transposed).backward(transposed_grad);
  EXPECT_TRUE(
      torch::equal(base.grad(), at::gelu_backward(transposed_grad, transposed.detach()).t()));
  // A second derivative (create_graph): LibTorch's differentiable backward, so it is not lost.
  // (A contiguous gradient, which the kernel would take: sum()'s is expanded.)
  const auto twice = torch::randn({16}).requires_grad_();
  const auto weights = torch::randn({16});
  const auto first = torch::autograd::grad({gelu_erf(twice)}, {twice}, {weights}, true, true)[0];
  const auto second = torch::autograd::grad({first.sum()}, {twice})[0];
  const auto reference = twice.detach().clone().requires_grad_();
  const auto reference_first =
      torch::autograd::grad({at::gelu(reference)}, {reference}, {weights}, true, true)[0];
  EXPECT_TRUE(
      torch::allclose(second, torch::autograd::grad({reference_first.sum()}, {reference})[0]));
  // Without gradients: at::gelu, no graph.
  torch::NoGradGuard no_grad;
  const auto plain = torch::randn({8}).requires_grad_();
  EXPECT_FALSE(gelu_erf(plain).requires_grad());
}

TEST(GeluBackward, RefusesWhatItCannotRun) {
  const auto x = torch::randn({4, 4});
  EXPECT_THROW(detail::gelu_erf_backward(torch::randn({4, 5}), x), Error);
  EXPECT_THROW(detail::gelu_erf_backward(x.to(torch::kDouble), x.to(torch::kDouble)), Error);
  EXPECT_THROW(detail::gelu_erf_backward(x.to(torch::kBFloat16), x.to(torch::kBFloat16)), Error);
  EXPECT_THROW(detail::gelu_erf_backward(x.t(), x), Error);
  try {
    detail::gelu_erf_backward(torch::randn({4, 5}), x);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[4, 5]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace adaptertune
