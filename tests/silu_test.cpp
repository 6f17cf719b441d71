// SiLU's bfloat16 kernels: values and the kept derivative against the exact ones computed in
// double over every bfloat16 value in [-20, 20], agreement with LibTorch's silu and
// silu_backward, where swish() uses them (with and without gradients) and where LibTorch's, and
// their refusals.
#include "silu.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/error.h"
#include "bfloat16_values.h"

namespace adaptertune {
namespace {

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

using testing::every_bfloat16_within;
using testing::half_bfloat16_spacing;

TEST(SiluBFloat16, ValuesAndDerivativesAreTheNearestBFloat16s) {
  const auto x = every_bfloat16_within(20);
  auto [value, derivative] = detail::silu_and_derivative_bfloat16(x);
  EXPECT_TRUE(torch::equal(value, detail::silu_bfloat16(x)));
  const auto xs = x.to(torch::kFloat);
  const auto values = value.to(torch::kFloat);
  const auto slopes = derivative.to(torch::kFloat);
  const auto theirs = at::silu(x).to(torch::kFloat);
  int64_t differ = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double xi = xs[i].item<float>();
    const double s = sigmoid(xi);
    const double exact = xi * s;
    const double exact_slope = s * (1 + xi * (1 - s));
    const double got = values[i].item<float>();
    const double slope = slopes[i].item<float>();
    // Rounded once from a float32 evaluation good to a few parts in 1e7.
    EXPECT_LE(std::abs(got - exact), half_bfloat16_spacing(exact) + 1e-6 * std::abs(exact))
        << "x = " << xi << ": " << got << " against " << exact;
    EXPECT_LE(std::abs(slope - exact_slope),
              half_bfloat16_spacing(exact_slope) + 1e-6 * std::abs(exact_slope) + 1e-30)
        << "x = " << xi << ": " << slope << " against " << exact_slope;
    const double libtorch = theirs[i].item<float>();
    if (got != libtorch) {
      ++differ;
      // LibTorch 1.13's bfloat16 silu rounds on the way (5.5625 at x = 5.5625, where the exact
      // 5.5412 rounds to 5.53125): where the two differ, this one is the nearer.
      EXPECT_LE(std::abs(got - exact), std::abs(libtorch - exact)) << "x = " << xi;
    }
  }
  EXPECT_GT(differ, 0);  // the comparison above was made
}

TEST(SiluBFloat16, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const auto x =
      torch::tensor({0.0f, -0.0f, 100.0f, -100.0f, inf, std::nanf("")}).to(torch::kBFloat16);
  const auto got = detail::silu_bfloat16(x).to(torch::kFloat);
  EXPECT_EQ(got[0].item<float>(), 0.0f);
  EXPECT_EQ(got[2].item<float>(), 100.0f);
  EXPECT_EQ(got[3].item<float>(), -0.0f);
  EXPECT_EQ(got[4].item<float>(), inf);
  EXPECT_TRUE(std::isnan(got[5].item<float>()));
  const auto slope = detail::silu_and_derivative_bfloat16(x).second.to(torch::kFloat);
  EXPECT_EQ(slope[0].item<float>(), 0.5f);
  EXPECT_EQ(slope[2].item<float>(), 1.0f);
  EXPECT_EQ(slope[3].item<float>(), 0.0f);
}

TEST(SiluBFloat16, SwishRunsItWithAndWithoutGradients) {
  // Several threads' blocks and every vector lane's position.
  const auto base = (torch::randn({1500, 77}) * 4).to(torch::kBFloat16);
  const auto x = base.clone().requires_grad_();
  const auto y = swish(x);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(y, detail::silu_bfloat16(base)));
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(swish(x), y));  // gradient checkpointing's two passes agree
  }
  const auto grad = torch::randn({1500, 77}).to(torch::kBFloat16);
  y.backward(grad);
  const auto derivative = detail::silu_and_derivative_bfloat16(base).second;
  EXPECT_TRUE(torch::equal(x.grad(), at::mul(grad, derivative)));
  // Within two bfloat16 steps of the exact gradient (the derivative's rounding and the
  // product's), and nearer it at worst than LibTorch's silu_backward, which rounds on the way.
  const auto xd = base.to(torch::kDouble);
  const auto s = torch::sigmoid(xd);
  const auto exact = grad.to(torch::kDouble) * s * (1 + xd * (1 - s));
  const auto error = (x.grad().to(torch::kDouble) - exact).abs();
  EXPECT_TRUE((error <= exact.abs() * (2.0 / 128) + 1e-30).all().item<bool>())
      << error.max().item<double>();
  const auto libtorch_error =
      (at::silu_backward(grad, base).to(torch::kDouble) - exact).abs().max().item<double>();
  EXPECT_LE(error.max().item<double>(), libtorch_error);
  // Float32, and a strided bfloat16 input: LibTorch's, exactly.
  const auto wide = torch::randn({8, 9}).requires_grad_();
  EXPECT_TRUE(torch::equal(swish(wide), at::silu(wide.detach())));
  const auto strided = base.clone().requires_grad_();
  const auto view = strided.t();
  ASSERT_FALSE(view.is_contiguous());
  const auto out = swish(view);
  EXPECT_TRUE(torch::equal(out, at::silu(view.detach())));
  const auto strided_grad = grad.t().contiguous();
  out.backward(strided_grad);
  EXPECT_TRUE(torch::equal(strided.grad().t(), at::silu_backward(strided_grad, view.detach())));
}

TEST(SiluBFloat16, SecondDerivativesAreRefusedNotWrong) {
  const auto x = torch::randn({16}).to(torch::kBFloat16).requires_grad_();
  const auto y = swish(x);
  try {
    torch::autograd::grad({y}, {x}, {torch::ones_like(y)}, true, true);
    ADD_FAILURE() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("create_graph"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("silu"), std::string::npos) << e.what();
  }
}

TEST(SiluBFloat16, RefusesWhatItCannotRun) {
  const auto x = torch::randn({4, 4}).to(torch::kBFloat16);
  EXPECT_THROW(detail::silu_bfloat16(x.to(torch::kFloat)), Error);
  EXPECT_THROW(detail::silu_and_derivative_bfloat16(x.t()), Error);
  try {
    detail::silu_bfloat16(x.t());
    ADD_FAILURE() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not contiguous"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace adaptertune
