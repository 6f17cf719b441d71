// The exact GELU's kernels: the float32 backward kernel's accuracy against the derivative computed
// in double, its agreement with LibTorch's gelu_backward, special values, where gelu_erf() uses it
// (and where LibTorch's backward), and its refusals; the same for the bfloat16 forward kernel and
// the derivative it keeps for backward.
#include "gelu.h"

#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/error.h"
#include "bfloat16_values.h"

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
  // float64: LibTorch's forward and backward, bit for bit.
  const auto wide = torch::randn({64, 96}, torch::kDouble).requires_grad_();
  const auto wide_grad = torch::randn({64, 96}, torch::kDouble);
  const auto wide_out = gelu_erf(wide);
  EXPECT_TRUE(torch::equal(wide_out, at::gelu(wide.detach())));
  wide_out.backward(wide_grad);
  EXPECT_TRUE(torch::equal(wide.grad(), at::gelu_backward(wide_grad, wide.detach())));
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

double exact_gelu(double x) {
  return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
}

using testing::every_bfloat16_within;
using testing::half_bfloat16_spacing;

TEST(GeluBFloat16, EveryValueIsAtGelusOrNearerTheExactOne) {
  const auto x = every_bfloat16_within(10);
  const auto ours = detail::gelu_bfloat16(x).to(torch::kFloat);
  const auto theirs = at::gelu(x).to(torch::kFloat);
  const auto xs = x.to(torch::kFloat);
  int64_t differ_above_minus_four = 0;
  double tail_relative = 0, tail_relative_libtorch = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double xi = xs[i].item<float>();
    const double exact = exact_gelu(xi);
    const double got = ours[i].item<float>();
    const double libtorch = theirs[i].item<float>();
    // Rounded once from a float32 evaluation: within half a spacing, plus that evaluation's error
    // (Phi's tail to a few parts in 1e3 below -4, where the value is under 1e-4).
    const double bound = half_bfloat16_spacing(exact) * (xi < -4 ? 3.0 : 1.0) + 2e-7 * std::abs(xi);
    EXPECT_LE(std::abs(got - exact), bound) << "x = " << xi << ": " << got << " against " << exact;
    if (xi < -4) {
      tail_relative = std::max(tail_relative, std::abs(got - exact) / std::abs(exact));
      tail_relative_libtorch =
          std::max(tail_relative_libtorch, std::abs(libtorch - exact) / std::abs(exact));
    } else if (std::abs(exact) >= std::ldexp(1.0, -126) && got != libtorch) {
      // From -4 up, at::gelu's bits (but for subnormal results, which it flushes to 0).
      if (++differ_above_minus_four <= 5) {
        ADD_FAILURE() << "x = " << xi << ": " << got << " against at::gelu's " << libtorch;
      }
    }
  }
  EXPECT_EQ(differ_above_minus_four, 0);
  // Below -4 at::gelu's 1 + erf cancels (0 below about -5.5, all digits lost); the kernel keeps
  // the value to a few bfloat16 steps (2.2 % at worst, near -10, where it is about 1e-22).
  EXPECT_LT(tail_relative, 0.03);
  EXPECT_GT(tail_relative_libtorch, 0.5);
  // NaN stays NaN; the infinities give at::gelu's values.
  const float inf = std::numeric_limits<float>::infinity();
  const auto special =
      torch::tensor({std::numeric_limits<float>::quiet_NaN(), inf, -inf}).to(torch::kBFloat16);
  const auto got = detail::gelu_bfloat16(special).to(torch::kFloat);
  EXPECT_TRUE(std::isnan(got[0].item<float>()));
  EXPECT_EQ(got[1].item<float>(), inf);
}

TEST(GeluBFloat16, TheDerivativeKeptIsTheNearestBFloat16) {
  const auto x = every_bfloat16_within(10);
  auto [value, derivative] = detail::gelu_and_derivative_bfloat16(x);
  // One pass gives the forward kernel's values too.
  EXPECT_TRUE(torch::equal(value, detail::gelu_bfloat16(x)));
  const auto xs = x.to(torch::kFloat);
  const auto ds = derivative.to(torch::kFloat);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double xi = xs[i].item<float>();
    const double exact = exact_derivative(xi);
    const double got = ds[i].item<float>();
    // Half a spacing, plus the float32 evaluation's 3.2e-7 (the float32 kernel's bound).
    EXPECT_LE(std::abs(got - exact), half_bfloat16_spacing(exact) + 3.2e-7)
        << "x = " << xi << ": " << got << " against " << exact;
  }
}

TEST(GeluBFloat16, GeluErfRunsItWithAndWithoutGradients) {
  // Several threads' blocks and every vector lane's position.
  const auto base = (torch::randn({1024, 333}) * 3).to(torch::kBFloat16);
  const auto x = base.clone().requires_grad_();
  const auto y = gelu_erf(x);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(y, detail::gelu_bfloat16(base)));
  // Without gradients the same bits (gradient checkpointing recomputes a pass made without them).
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(gelu_erf(x), y));
  }
  // The gradient: grad times the kept derivative, rounded once; within two bfloat16 steps of
  // LibTorch's gelu_backward (one rounding of the derivative, one of the product).
  const auto grad = torch::randn({1024, 333}).to(torch::kBFloat16);
  y.backward(grad);
  const auto derivative = detail::gelu_and_derivative_bfloat16(base).second;
  EXPECT_TRUE(torch::equal(x.grad(), at::mul(grad, derivative)));
  const auto libtorch = at::gelu_backward(grad, base).to(torch::kFloat);
  const auto difference = (x.grad().to(torch::kFloat) - libtorch).abs();
  EXPECT_TRUE((difference <= libtorch.abs() * (2.0 / 128) + 1e-6).all().item<bool>())
      << difference.max().item<float>();
  // A strided bfloat16 input: at::gelu and LibTorch's backward, exactly.
  const auto strided = base.clone().requires_grad_();
  const auto view = strided.t();
  ASSERT_FALSE(view.is_contiguous());
  const auto strided_out = gelu_erf(view);
  EXPECT_TRUE(torch::equal(strided_out, at::gelu(view.detach())));
  const auto strided_grad = grad.t().contiguous();
  strided_out.backward(strided_grad);
  EXPECT_TRUE(torch::equal(strided.grad().t(), at::gelu_backward(strided_grad, view.detach())));
}

TEST(GeluBFloat16, SecondDerivativesAreRefusedNotWrong) {
  const auto x = torch::randn({16}).to(torch::kBFloat16).requires_grad_();
  const auto y = gelu_erf(x);
  EXPECT_THROW(torch::autograd::grad({y}, {x}, {torch::ones_like(y)}, true, true), Error);
  try {
    torch::autograd::grad({gelu_erf(x)}, {x}, {torch::ones_like(y)}, true, true);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("create_graph"), std::string::npos) << e.what();
  }
}

TEST(GeluBFloat16, RefusesWhatItCannotRun) {
  const auto x = torch::randn({4, 4}).to(torch::kBFloat16);
  EXPECT_THROW(detail::gelu_bfloat16(x.to(torch::kFloat)), Error);
  EXPECT_THROW(detail::gelu_bfloat16(x.t()), Error);
  EXPECT_THROW(detail::gelu_and_derivative_bfloat16(x.t()), Error);
  EXPECT_THROW(detail::gelu_bfloat16(at::Tensor()), Error);
  try {
    detail::gelu_bfloat16(x.t());
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not contiguous"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace adaptertune
