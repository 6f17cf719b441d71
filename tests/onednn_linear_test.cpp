// oneDNN's float32 Linear: where it applies, and that it matches at::linear forward and backward.
#include "onednn_linear.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/error.h"
#include "adaptertune/precision.h"
#include "linear.h"

namespace adaptertune {
namespace {

// Relative agreement of two float32 results that differ only in the order of their sums.
void expect_close(const at::Tensor& actual, const at::Tensor& expected, const char* what) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double scale = expected.abs().max().item<double>() + 1e-12;
  EXPECT_LT((actual - expected).abs().max().item<double>() / scale, 1e-5) << what;
}

struct Case {
  std::vector<int64_t> x_shape;
  int64_t out_features;
  bool bias;
  bool x_grad;
  bool weight_grad;
};

class OneDnnLinearParity : public ::testing::TestWithParam<Case> {};

TEST_P(OneDnnLinearParity, MatchesAtLinearForwardAndBackward) {
  if (!onednn_linear_built()) GTEST_SKIP() << "built without oneDNN";
  const Case c = GetParam();
  torch::manual_seed(7);
  const int64_t in_features = c.x_shape.back();
  const at::Tensor x0 = torch::randn(c.x_shape);
  const at::Tensor w0 = torch::randn({c.out_features, in_features}) * 0.1;
  const at::Tensor b0 = c.bias ? torch::randn({c.out_features}) : at::Tensor();
  auto leaf = [](const at::Tensor& t, bool grad) {
    return t.defined() ? t.clone().set_requires_grad(grad) : at::Tensor();
  };
  at::Tensor x1 = leaf(x0, c.x_grad), w1 = leaf(w0, c.weight_grad), b1 = leaf(b0, c.weight_grad);
  at::Tensor x2 = leaf(x0, c.x_grad), w2 = leaf(w0, c.weight_grad), b2 = leaf(b0, c.weight_grad);
  ASSERT_TRUE(onednn_linear_applies(x1, w1, b1));
  const at::Tensor ours = onednn_linear(x1, w1, b1);
  const at::Tensor reference = at::linear(x2, w2, b2);
  expect_close(ours, reference, "output");
  if (!c.x_grad && !c.weight_grad) return;
  const at::Tensor upstream = torch::randn(reference.sizes());
  (ours * upstream).sum().backward();
  (reference * upstream).sum().backward();
  if (c.x_grad) expect_close(x1.grad(), x2.grad(), "input gradient");
  if (c.weight_grad) {
    expect_close(w1.grad(), w2.grad(), "weight gradient");
    if (c.bias) expect_close(b1.grad(), b2.grad(), "bias gradient");
  } else {
    EXPECT_FALSE(w1.grad().defined());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, OneDnnLinearParity,
    ::testing::Values(Case{{32, 64, 256}, 768, true, true, true},    // full fine-tuning
                      Case{{32, 64, 256}, 1024, true, true, false},  // frozen layer (adapters)
                      Case{{4, 7, 96}, 13, false, false, true},      // odd sizes, no bias
                      Case{{5, 33}, 1, true, true, true},            // 2-D input, one output
                      Case{{3, 2, 5, 16}, 8, true, false, false}));  // 4-D input, no gradient

TEST(OneDnnLinear, NonContiguousInputsAreHandled) {
  if (!onednn_linear_built()) GTEST_SKIP() << "built without oneDNN";
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({16, 40, 12}).transpose(0, 1);  // [40, 16, 12], strided
  const at::Tensor w = torch::randn({20, 12});
  const at::Tensor b = torch::randn({20});
  ASSERT_FALSE(x.is_contiguous());
  expect_close(onednn_linear(x, w, b), at::linear(x, w, b), "transposed input");
}

TEST(OneDnnLinear, AppliesOnlyToPlainFloat32ProductsOutsideAutocast) {
  const at::Tensor x = torch::randn({4, 8});
  const at::Tensor w = torch::randn({6, 8});
  const at::Tensor b = torch::randn({6});
  EXPECT_EQ(onednn_linear_applies(x, w, b), onednn_linear_built());
  EXPECT_EQ(onednn_linear_applies(x, w, at::Tensor()), onednn_linear_built());
  EXPECT_FALSE(onednn_linear_applies(x.to(at::kBFloat16), w.to(at::kBFloat16), at::Tensor()));
  EXPECT_FALSE(onednn_linear_applies(x.to(at::kDouble), w.to(at::kDouble), at::Tensor()));
  EXPECT_FALSE(onednn_linear_applies(x, torch::randn({8, 6}).t(), b));  // non-contiguous weight
  EXPECT_FALSE(onednn_linear_applies(x, torch::randn({6, 9}), b));      // in-features differ
  EXPECT_FALSE(onednn_linear_applies(x, w, torch::randn({5})));         // bias of the wrong size
  EXPECT_FALSE(onednn_linear_applies(torch::randn({0, 8}), w, b));      // no rows
  {
    // Under bf16 autocast the product belongs to autocast (at::linear in bf16).
    AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
    EXPECT_FALSE(onednn_linear_applies(x, w, b));
    EXPECT_EQ(linear(x, w, b).scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(linear(x, w, b).scalar_type(), at::kFloat);
}

TEST(OneDnnLinear, RefusesWhatItDoesNotServeWithAClearError) {
  const at::Tensor x = torch::randn({4, 8});
  try {
    onednn_linear(x, torch::randn({6, 9}), at::Tensor());
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[6, 9]"), std::string::npos) << e.what();
  }
}

TEST(OneDnnLinear, RecordsNoGraphWithoutGradients) {
  if (!onednn_linear_built()) GTEST_SKIP() << "built without oneDNN";
  const at::Tensor w = torch::randn({6, 8}).set_requires_grad(true);
  {
    torch::NoGradGuard no_grad;
    EXPECT_FALSE(onednn_linear(torch::randn({4, 8}), w, at::Tensor()).requires_grad());
  }
  {
    c10::InferenceMode inference;
    EXPECT_FALSE(onednn_linear(torch::randn({4, 8}), w, at::Tensor()).requires_grad());
  }
  EXPECT_TRUE(onednn_linear(torch::randn({4, 8}), w, at::Tensor()).requires_grad());
}

}  // namespace
}  // namespace adaptertune
