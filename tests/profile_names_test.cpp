// The library's own kernels (oneDNN's products, the hashed dropout, GELU's and SiLU's, the AdamW
// step) run outside ATen's operators, so without a RecordFunction of their own a profiler's trace
// has no event for them and their time shows as nothing at all. Each test records the names that
// LibTorch's profilers would see while the work runs.
#include <memory>
#include <string>
#include <vector>

#include <ATen/record_function.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/training/optimizer.h"
#include "dropout.h"
#include "gelu.h"
#include "onednn_products.h"
#include "silu.h"
#include "test_util.h"

namespace adaptertune {
namespace {

using testing::names_recorded_by;

bool contains(const std::vector<std::string>& names, const std::string& name) {
  for (const std::string& n : names) {
    if (n == name) return true;
  }
  return false;
}

TEST(ProfileNames, OneDnnProductsAreRecorded) {
  const auto x = torch::randn({4, 8}).requires_grad_();
  const auto weight = torch::randn({6, 8}).requires_grad_();
  const auto bias = torch::randn({6});
  if (!onednn_linear_applies(x, weight, bias)) GTEST_SKIP() << "this build has no oneDNN";
  const auto a = torch::randn({1, 2, 3, 4});
  const auto b = torch::randn({1, 2, 4, 5});
  const bool batched = onednn_batched_matmul_applies(a, b);  // float32 kernels on this CPU
  const auto names = names_recorded_by([&] {
    onednn_linear(x, weight, bias).sum().backward();
    if (batched) onednn_batched_matmul(a, b, BatchedProductOrder::kHeadsFirst);
  });
  EXPECT_TRUE(contains(names, "adaptertune::onednn_linear"));
  EXPECT_EQ(contains(names, "adaptertune::onednn_batched_matmul"), batched);
  // The backward pass is recorded by the autograd engine under the function's node.
  bool backward_recorded = false;
  for (const std::string& name : names) {
    backward_recorded |= name.find("OneDnnLinearFunction") != std::string::npos;
  }
  EXPECT_TRUE(backward_recorded);
}

TEST(ProfileNames, HashedDropoutIsRecordedWhereItHashes) {
  const auto input = torch::randn({4, 8});
  auto names = names_recorded_by([&] { hashed_dropout(input, 0.1, /*training=*/true); });
  EXPECT_TRUE(contains(names, "adaptertune::hashed_dropout"));
  // In evaluation nothing runs, so nothing is recorded under that name.
  names = names_recorded_by([&] { hashed_dropout(input, 0.1, /*training=*/false); });
  EXPECT_FALSE(contains(names, "adaptertune::hashed_dropout"));
}

TEST(ProfileNames, TheAdamWStepIsRecorded) {
  auto weight = torch::randn({3, 3}).requires_grad_();
  AdamW optimizer({OptimizerGroup{{weight}, {"w"}, 0.0}}, AdamWOptions{});
  weight.sum().backward();
  const auto names = names_recorded_by([&] { optimizer.step(); });
  EXPECT_TRUE(contains(names, "adaptertune::AdamW.step"));
}

TEST(ProfileNames, GeluKernelsAreRecorded) {
  const auto low = torch::randn({4, 8}).to(torch::kBFloat16);
  const auto trained = low.clone().requires_grad_();
  const auto names = names_recorded_by([&] {
    gelu_erf(low);
    gelu_erf(trained).sum().backward();
    // A contiguous gradient, which the float32 kernel takes (sum()'s is expanded).
    gelu_erf(torch::randn({4, 8}).requires_grad_()).backward(torch::ones({4, 8}));
  });
  EXPECT_TRUE(contains(names, "adaptertune::gelu_bfloat16"));
  EXPECT_TRUE(contains(names, "adaptertune::gelu_and_derivative_bfloat16"));
  EXPECT_TRUE(contains(names, "adaptertune::gelu_erf_backward"));
}

TEST(ProfileNames, SwishKernelsAreRecorded) {
  const auto low = torch::randn({4, 8}).to(torch::kBFloat16);
  const auto trained = low.clone().requires_grad_();
  const auto names = names_recorded_by([&] {
    swish(low);
    swish(trained).sum().backward();
  });
  EXPECT_TRUE(contains(names, "adaptertune::silu_bfloat16"));
  EXPECT_TRUE(contains(names, "adaptertune::silu_and_derivative_bfloat16"));
}

}  // namespace
}  // namespace adaptertune
