// oneDNN's products: where the Linear (float32 and bfloat16) and the batched
// products apply, and that they match at::linear and at::matmul forward and backward (bfloat16: bit
// for bit); linear_activation()'s fused activations.
#include "onednn_products.h"

#include <cmath>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/error.h"
#include "adaptertune/layers/activation.h"
#include "adaptertune/precision.h"
#include "linear.h"
#include "shape_check.h"

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

// The cases as ctest lists them (gtest would print their bytes).
std::string shape_name(const std::vector<int64_t>& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i > 0 ? "x" : "") + std::to_string(shape[i]);
  return out;
}

void PrintTo(const Case& c, std::ostream* os) {
  *os << shape_name(c.x_shape) << "_out" << c.out_features << (c.bias ? "_bias" : "")
      << (c.x_grad ? "_xgrad" : "") << (c.weight_grad ? "_wgrad" : "");
}

class OneDnnLinearParity : public ::testing::TestWithParam<Case> {};

TEST_P(OneDnnLinearParity, MatchesAtLinearForwardAndBackward) {
  if (!onednn_built()) GTEST_SKIP() << "built without oneDNN";
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
  if (!onednn_built()) GTEST_SKIP() << "built without oneDNN";
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({16, 40, 12}).transpose(0, 1);  // [40, 16, 12], strided
  const at::Tensor w = torch::randn({20, 12});
  const at::Tensor b = torch::randn({20});
  ASSERT_FALSE(x.is_contiguous());
  expect_close(onednn_linear(x, w, b), at::linear(x, w, b), "transposed input");
}

// Whether oneDNN has compiled bfloat16 kernels on this CPU, as the library decides it.
bool bf16_kernels() {
  const at::Tensor probe = torch::ones({1, 1, 2, 2}, at::kBFloat16);
  return onednn_batched_matmul_applies(probe, probe);
}

TEST(OneDnnLinear, AppliesToFloat32AndBFloat16Products) {
  const at::Tensor x = torch::randn({4, 8});
  const at::Tensor w = torch::randn({6, 8});
  const at::Tensor b = torch::randn({6});
  EXPECT_EQ(onednn_linear_applies(x, w, b), onednn_built());
  EXPECT_EQ(onednn_linear_applies(x, w, at::Tensor()), onednn_built());
  EXPECT_EQ(onednn_linear_applies(x.to(at::kBFloat16), w.to(at::kBFloat16), at::Tensor()),
            bf16_kernels());
  EXPECT_FALSE(onednn_linear_applies(x.to(at::kBFloat16), w, b));  // mixed, without autocast
  EXPECT_FALSE(onednn_linear_applies(x.to(at::kDouble), w.to(at::kDouble), at::Tensor()));
  EXPECT_FALSE(onednn_linear_applies(x, torch::randn({8, 6}).t(), b));  // non-contiguous weight
  EXPECT_FALSE(onednn_linear_applies(x, torch::randn({6, 9}), b));      // in-features differ
  EXPECT_FALSE(onednn_linear_applies(x, w, torch::randn({5})));         // bias of the wrong size
  EXPECT_FALSE(onednn_linear_applies(torch::randn({0, 8}), w, b));      // no rows
  {
    AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
    // A bfloat16 product without gradients (inference) is served, mixed dtypes included: autocast
    // casts them.
    EXPECT_EQ(onednn_linear_applies(x, w, b), bf16_kernels());
    EXPECT_EQ(onednn_linear_applies(x, w.to(at::kBFloat16), b), bf16_kernels());
    // With gradients too: a frozen weight under an input that wants its gradient (a base under
    // adapters), and a weight or bias that trains.
    EXPECT_EQ(onednn_linear_applies(x.clone().set_requires_grad(true), w, b), bf16_kernels());
    const at::Tensor trained = w.clone().set_requires_grad(true);
    EXPECT_EQ(onednn_linear_applies(x, trained, b), bf16_kernels());
    EXPECT_EQ(onednn_linear_applies(x, w, b.clone().set_requires_grad(true)), bf16_kernels());
    EXPECT_EQ(linear(x, w, b).scalar_type(), at::kBFloat16);
    EXPECT_EQ(linear(x, trained, b).scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(linear(x, w, b).scalar_type(), at::kFloat);
}

struct BFloat16Case {
  std::vector<int64_t> x_shape;
  int64_t out_features;
  bool bias;
  bool weight_stored_in_bf16;  // as prepare_for_inference() stores frozen weights
};

void PrintTo(const BFloat16Case& c, std::ostream* os) {
  *os << shape_name(c.x_shape) << "_out" << c.out_features << (c.bias ? "_bias" : "")
      << (c.weight_stored_in_bf16 ? "_bf16weight" : "_float32weight");
}

class OneDnnLinearBFloat16 : public ::testing::TestWithParam<BFloat16Case> {};

// In bfloat16 the fast path must not change a single bit of what autocast's at::linear gives:
// a Predictor and the training loop's evaluation run it, and packs trained before it existed must
// score as they did.
TEST_P(OneDnnLinearBFloat16, GivesAutocastLinearsBits) {
  if (!onednn_built() || !bf16_kernels()) GTEST_SKIP() << "no oneDNN bfloat16 kernels here";
  const BFloat16Case c = GetParam();
  torch::manual_seed(11);
  const int64_t in_features = c.x_shape.back();
  const at::Tensor x = torch::randn(c.x_shape);
  at::Tensor w = torch::randn({c.out_features, in_features}) * 0.05;
  if (c.weight_stored_in_bf16) w = w.to(at::kBFloat16);
  const at::Tensor b = c.bias ? torch::randn({c.out_features}) : at::Tensor();
  c10::InferenceMode inference;
  AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
  ASSERT_TRUE(onednn_linear_applies(x, w, b));
  const at::Tensor ours = onednn_linear(x, w, b);
  const at::Tensor reference = at::linear(x, w, b);
  ASSERT_EQ(ours.scalar_type(), at::kBFloat16);
  ASSERT_EQ(ours.sizes(), reference.sizes());
  EXPECT_TRUE(torch::equal(ours, reference))
      << "largest difference " << (ours - reference).abs().max().item<float>();
  // A bfloat16 input (the previous product's output) gives the same too.
  EXPECT_TRUE(torch::equal(onednn_linear(x.to(at::kBFloat16), w, b),
                           at::linear(x.to(at::kBFloat16), w, b)));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, OneDnnLinearBFloat16,
    ::testing::Values(
        BFloat16Case{{32, 27, 256}, 768, true, true},    // packed q, k, v; a short batch
        BFloat16Case{{32, 64, 256}, 1024, true, false},  // weight cast per call
        BFloat16Case{{8, 5, 256}, 64, true, true},       // an adapter's down projection
        BFloat16Case{{3, 7, 96}, 13, false, true},       // odd sizes, no bias
        BFloat16Case{{1, 768}, 3072, true, true},        // one row
        BFloat16Case{{4, 128, 3072}, 768, true, true},   // bert-base's feed-forward output
        BFloat16Case{{4, 17, 768}, 2304, true, true}));  // bert-base's q, k, v

// Training in bfloat16: neither the product nor its gradients may change a bit of what autocast's
// at::linear gives, for a frozen weight (a base under adapters: the input gradient alone) and for
// one that trains (its float32 gradient through autocast's cast), so that runs trained before
// this path existed repeat, and no figure in the docs moves.
TEST_P(OneDnnLinearBFloat16, GivesAutocastLinearsBitsWithGradients) {
  if (!onednn_built() || !bf16_kernels()) GTEST_SKIP() << "no oneDNN bfloat16 kernels here";
  const BFloat16Case c = GetParam();
  torch::manual_seed(19);
  const int64_t in_features = c.x_shape.back();
  const at::Tensor x0 = torch::randn(c.x_shape);
  at::Tensor w0 = torch::randn({c.out_features, in_features}) * 0.05;
  if (c.weight_stored_in_bf16) w0 = w0.to(at::kBFloat16);
  const at::Tensor b0 = c.bias ? torch::randn({c.out_features}) : at::Tensor();
  AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
  // A float32 input (a LayerNorm's output) and a bfloat16 one (the previous product's); a frozen
  // weight and bias, and float32 ones that train.
  for (at::ScalarType input_type : {at::kFloat, at::kBFloat16}) {
    for (bool trains : {false, true}) {
      SCOPED_TRACE(std::string(c10::toString(input_type)) + (trains ? ", trains" : ", frozen"));
      auto leaf = [](const at::Tensor& t, bool grad) {
        return t.defined() ? t.clone().set_requires_grad(grad) : at::Tensor();
      };
      const at::Tensor x1 = leaf(x0.to(input_type), true), x2 = leaf(x0.to(input_type), true);
      const at::Tensor w = trains ? w0.to(at::kFloat) : w0;
      const at::Tensor w1 = leaf(w, trains), w2 = leaf(w, trains);
      const at::Tensor b1 = leaf(b0, trains), b2 = leaf(b0, trains);
      ASSERT_TRUE(onednn_linear_applies(x1, w1, b1));
      const at::Tensor ours = onednn_linear(x1, w1, b1);
      const at::Tensor reference = at::linear(x2, w2, b2);
      ASSERT_EQ(ours.scalar_type(), at::kBFloat16);
      EXPECT_TRUE(torch::equal(ours, reference))
          << "largest difference " << (ours - reference).abs().max().item<float>();
      const at::Tensor upstream = torch::randn(reference.sizes()).to(at::kBFloat16);
      (ours.to(at::kFloat) * upstream).sum().backward();
      (reference.to(at::kFloat) * upstream).sum().backward();
      ASSERT_TRUE(x1.grad().defined());
      ASSERT_EQ(x1.grad().scalar_type(), input_type);
      EXPECT_TRUE(torch::equal(x1.grad(), x2.grad()))
          << "largest input-gradient difference "
          << (x1.grad() - x2.grad()).abs().max().item<float>();
      if (!trains) {
        EXPECT_FALSE(w1.grad().defined());
        continue;
      }
      ASSERT_TRUE(w1.grad().defined());
      ASSERT_EQ(w1.grad().scalar_type(), at::kFloat);
      EXPECT_TRUE(torch::equal(w1.grad(), w2.grad()))
          << "largest weight-gradient difference "
          << (w1.grad() - w2.grad()).abs().max().item<float>();
      if (c.bias) {
        EXPECT_TRUE(torch::equal(b1.grad(), b2.grad())) << "bias gradient";
      }
    }
  }
}

// A frozen bfloat16 weight under FrozenLinearWeightsPrepacked: the product and its input gradient
// keep their bits, and the copy follows the weight.
TEST(FrozenLinearWeightsPrepacked, GivesTheSameBitsAndFollowsWritesAndViews) {
  if (!onednn_built() || !bf16_kernels()) GTEST_SKIP() << "no oneDNN bfloat16 kernels here";
  torch::manual_seed(29);
  torch::nn::Linear layer(torch::nn::LinearOptions(96, 200));
  {
    torch::NoGradGuard no_grad;  // as FrozenLinearWeightsInDtype leaves a frozen weight
    layer->weight.set_data(layer->weight.to(at::kBFloat16));
  }
  layer->weight.set_requires_grad(false);
  layer->bias.set_requires_grad(false);
  const at::Tensor x0 = torch::randn({4, 33, 96});
  const at::Tensor upstream = torch::randn({4, 33, 200});
  AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
  auto product_and_gradient = [&]() -> std::pair<at::Tensor, at::Tensor> {
    const at::Tensor x = x0.clone().set_requires_grad(true);
    const at::Tensor out = linear(*layer, x);
    (out.to(at::kFloat) * upstream).sum().backward();
    return {out, x.grad()};
  };
  const auto [unpacked, unpacked_gradient] = product_and_gradient();
  at::Tensor unpacked_inference;
  {
    c10::InferenceMode inference;  // evaluation: the fused epilogue path
    unpacked_inference = linear_activation(x0, layer->weight, layer->bias, Activation::kGelu);
  }
  ASSERT_EQ(FrozenLinearWeightsPrepacked::copies(), 0);
  {
    FrozenLinearWeightsPrepacked prepacked(*layer);
    EXPECT_EQ(prepacked.covered(), 1);
    const auto [packed, packed_gradient] = product_and_gradient();
    EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 1);
    EXPECT_TRUE(torch::equal(packed, unpacked));
    EXPECT_TRUE(torch::equal(packed_gradient, unpacked_gradient));
    {
      c10::InferenceMode inference;
      EXPECT_TRUE(torch::equal(linear_activation(x0, layer->weight, layer->bias, Activation::kGelu),
                               unpacked_inference));
    }
    EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 1) << "one copy serves every product";

    // An in-place write through the weight moves its version counter: the copy is made again.
    {
      torch::NoGradGuard no_grad;
      layer->weight.mul_(2);
    }
    const at::Tensor doubled = product_and_gradient().first;
    EXPECT_TRUE(torch::equal(doubled, at::linear(x0, layer->weight, layer->bias)));
    EXPECT_FALSE(torch::equal(doubled, unpacked));
    EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 1) << "replaced, not added";

    // Rows of the weight (as the last layer's query rows of the packed projections): their own
    // copy, the same bits.
    const at::Tensor rows = layer->weight.narrow(0, 10, 64);
    const at::Tensor rows_bias = layer->bias.narrow(0, 10, 64);
    EXPECT_TRUE(torch::equal(linear(x0, rows, rows_bias), at::linear(x0, rows, rows_bias)));
    EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 2);
  }
  EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 0) << "the copies went with the scope";

  // Weights that train are not covered, and float32 ones only where asked for.
  torch::nn::Linear trained(torch::nn::LinearOptions(8, 4));
  EXPECT_EQ(FrozenLinearWeightsPrepacked(*trained).covered(), 0);
  EXPECT_EQ(FrozenLinearWeightsPrepacked(*trained, PrepackedDtypes::kBFloat16AndFloat32).covered(),
            0);
  trained->weight.set_requires_grad(false);
  EXPECT_EQ(FrozenLinearWeightsPrepacked(*trained).covered(), 0) << "float32";
  EXPECT_EQ(FrozenLinearWeightsPrepacked(*trained, PrepackedDtypes::kBFloat16AndFloat32).covered(),
            1);
}

// A frozen float32 weight under FrozenLinearWeightsPrepacked with float32 chosen: its forward
// products run a per-shape kernel from the copy, the same values up to the order of the sums,
// for every row count (a short request's, a batch's); the input gradient, which reads the weight
// itself, keeps its bits; and the copy follows writes.
TEST(FrozenLinearWeightsPrepacked, Float32GivesTheValuesUpToRoundingAndFollowsWrites) {
  if (!onednn_built()) GTEST_SKIP() << "built without oneDNN";
  torch::manual_seed(31);
  torch::nn::Linear layer(torch::nn::LinearOptions(300, 200));
  layer->weight.set_requires_grad(false);
  layer->bias.set_requires_grad(false);
  auto close = [](const at::Tensor& got, const at::Tensor& expected) {
    return at::allclose(got, expected, /*rtol=*/1e-5, /*atol=*/1e-5);
  };
  for (const int64_t rows : {1, 7, 64, 333}) {
    SCOPED_TRACE("rows " + std::to_string(rows));
    const at::Tensor x0 = torch::randn({rows, 300});
    const at::Tensor upstream = torch::randn({rows, 200});
    auto product_and_gradient = [&]() -> std::pair<at::Tensor, at::Tensor> {
      const at::Tensor x = x0.clone().set_requires_grad(true);
      const at::Tensor out = linear(*layer, x);
      (out * upstream).sum().backward();
      return {out, x.grad()};
    };
    const auto [unpacked, unpacked_gradient] = product_and_gradient();
    at::Tensor unpacked_inference;
    {
      c10::InferenceMode inference;  // the activation inside the product
      unpacked_inference = linear_activation(x0, layer->weight, layer->bias, Activation::kGelu);
    }
    ASSERT_EQ(FrozenLinearWeightsPrepacked::copies(), 0);
    {
      FrozenLinearWeightsPrepacked prepacked(*layer, PrepackedDtypes::kBFloat16AndFloat32);
      EXPECT_EQ(prepacked.covered(), 1);
      const auto [packed, packed_gradient] = product_and_gradient();
      EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 1);
      EXPECT_TRUE(close(packed, unpacked)) << (packed - unpacked).abs().max().item<float>();
      EXPECT_TRUE(close(packed, at::linear(x0, layer->weight, layer->bias)));
      EXPECT_TRUE(torch::equal(packed_gradient, unpacked_gradient));
      {
        c10::InferenceMode inference;
        EXPECT_TRUE(close(linear_activation(x0, layer->weight, layer->bias, Activation::kGelu),
                          unpacked_inference));
      }
      {
        torch::NoGradGuard no_grad;
        layer->weight.mul_(2);
      }
      EXPECT_TRUE(close(linear(*layer, x0), at::linear(x0, layer->weight, layer->bias)));
      EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 1) << "replaced, not added";
      {
        torch::NoGradGuard no_grad;
        layer->weight.div_(2);
      }
    }
    EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 0) << "the copies went with the scope";
  }
}

// Every activation: fused into the product where nothing is recorded, applied after it where
// something is, and in both cases what apply_activation() of the product gives.
TEST(LinearActivation, MatchesTheProductFollowedByTheActivation) {
  torch::manual_seed(13);
  const at::Tensor x = torch::randn({6, 9, 40});
  const at::Tensor w = torch::randn({72, 40}) * 0.2;
  const at::Tensor b = torch::randn({72});
  for (Activation activation : {Activation::kGelu, Activation::kGeluTanh, Activation::kRelu,
                                Activation::kSilu, Activation::kTanh, Activation::kIdentity}) {
    SCOPED_TRACE(activation_name(activation));
    const at::Tensor expected = apply_activation(activation, at::linear(x, w, b));
    {
      c10::InferenceMode inference;  // fused in float32
      expect_close(linear_activation(x, w, b, activation), expected, "float32, fused");
    }
    {
      // Recorded: the activation follows the product, and its gradient flows.
      const at::Tensor leaf = x.clone().set_requires_grad(true);
      const at::Tensor out = linear_activation(leaf, w, b, activation);
      expect_close(out, expected, "float32, with autograd");
      out.sum().backward();
      ASSERT_TRUE(leaf.grad().defined());
    }
    if (!onednn_built() || !bf16_kernels()) continue;
    c10::InferenceMode inference;
    AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
    const at::Tensor unfused = apply_activation(activation, at::linear(x, w, b)).to(at::kFloat);
    const at::Tensor fused = linear_activation(x, w, b, activation);
    ASSERT_EQ(fused.scalar_type(), at::kBFloat16);
    // The fused activation sees the float32 sum, the unfused one its bfloat16 rounding: they may
    // differ by a rounding step of the result.
    const double step = unfused.abs().max().item<double>() / 128.0;
    EXPECT_LE((fused.to(at::kFloat) - unfused).abs().max().item<double>(), step);
  }
}

// Outside InferenceMode a pass without gradients (gradient checkpointing's first run) must give
// the bits of the same pass with them, so nothing is fused there.
TEST(LinearActivation, WithoutInferenceModeGivesTheUnfusedBitsInBFloat16) {
  torch::manual_seed(17);
  const at::Tensor x = torch::randn({4, 33, 64});
  const at::Tensor w = torch::randn({256, 64}) * 0.2;
  const at::Tensor b = torch::randn({256});
  AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
  for (Activation activation : {Activation::kGelu, Activation::kSilu}) {
    SCOPED_TRACE(activation_name(activation));
    const at::Tensor trained = w.clone().set_requires_grad(true);
    const at::Tensor with_gradients = linear_activation(x, trained, b, activation);
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(linear_activation(x, trained, b, activation), with_gradients));
    EXPECT_TRUE(torch::equal(linear_activation(x, w, b, activation),
                             apply_activation(activation, at::linear(x, w, b))));
  }
}

// linear_add(): the scale and the residual additions inside a bfloat16 product under
// InferenceMode, on the float32 sums: the exact sum of the bfloat16 operands' product, and no
// farther from the unfused steps than their roundings to bfloat16; the result float32 where an
// addend is.
TEST(LinearAdd, FusedUnderInferenceModeSumsInFloat32) {
  if (!onednn_built() || !bf16_kernels()) GTEST_SKIP() << "no oneDNN bfloat16 kernels";
  torch::manual_seed(19);
  const at::Tensor x = torch::randn({3, 11, 64});
  const at::Tensor w = torch::randn({96, 64}) * 0.2;
  const at::Tensor b = torch::randn({96});
  const at::Tensor residual = torch::randn({3, 11, 96}).to(at::kBFloat16);
  const at::Tensor input = torch::randn({3, 11, 96});
  auto rounded = [](const at::Tensor& t) { return t.to(at::kBFloat16).to(at::kFloat); };
  const at::Tensor product = at::linear(rounded(x), rounded(w), rounded(b));
  for (double scale : {1.0, 0.5}) {
    SCOPED_TRACE("scale " + std::to_string(scale));
    c10::InferenceMode inference;
    AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
    ASSERT_TRUE(onednn_linear_add_applies(x, w, b, {residual, input}));
    const at::Tensor fused = linear_add(x, w, b, scale, {residual, input});
    ASSERT_EQ(fused.scalar_type(), at::kFloat);
    expect_close(fused, product * scale + residual.to(at::kFloat) + input, "float32 sums");
    at::Tensor unfused = at::linear(x, w, b);
    if (scale != 1.0) unfused = unfused * scale;
    unfused = unfused + residual + input;
    // The unfused steps round the product and its sum with the residual to bfloat16.
    const double step = unfused.abs().max().item<double>() / 128.0;
    EXPECT_LE((fused - unfused).abs().max().item<double>(), step);
    EXPECT_FALSE(torch::equal(fused, unfused)) << "nothing fused?";
    // bfloat16 addends only: a bfloat16 result, rounded once from the float32 sum: each element
    // within a bfloat16 rounding of it (doubled, for float32 sums taken in another order), plus a
    // float32 rounding of the terms for elements near zero.
    const at::Tensor bf16 = linear_add(x, w, b, scale, {residual});
    ASSERT_EQ(bf16.scalar_type(), at::kBFloat16);
    const at::Tensor exact = product * scale + residual.to(at::kFloat);
    EXPECT_TRUE(
        ((bf16.to(at::kFloat) - exact).abs() <= exact.abs() / 128 + 1e-4).all().item<bool>());
  }
}

// Outside InferenceMode (with or without gradients), and where the fused product does not apply,
// linear_add() is the unfused steps, bit for bit.
TEST(LinearAdd, ElsewhereGivesTheUnfusedStepsBits) {
  torch::manual_seed(23);
  const at::Tensor x = torch::randn({2, 7, 32});
  const at::Tensor w = torch::randn({48, 32}) * 0.2;
  const at::Tensor b = torch::randn({48});
  const at::Tensor residual = torch::randn({2, 7, 48});
  const at::Tensor input = torch::randn({2, 7, 48});
  auto unfused = [&](const at::Tensor& weight, double scale) {
    return linear(x, weight, b) * scale + residual + input;
  };
  for (bool bfloat16 : {false, true}) {
    SCOPED_TRACE(bfloat16 ? "bfloat16" : "float32");
    std::optional<AutocastGuard> autocast;
    if (bfloat16) autocast.emplace(torch::kCPU, Precision::kBFloat16);
    const at::Tensor trained = w.clone().set_requires_grad(true);
    const at::Tensor with_gradients = linear_add(x, trained, b, 0.25, {residual, input});
    EXPECT_TRUE(torch::equal(with_gradients, unfused(trained, 0.25)));
    with_gradients.sum().backward();
    EXPECT_TRUE(trained.grad().defined());
    torch::NoGradGuard no_grad;
    EXPECT_FALSE(onednn_linear_add_applies(x, w, b, {residual, input}));
    EXPECT_TRUE(torch::equal(linear_add(x, w, b, 0.25, {residual, input}), unfused(w, 0.25)));
  }
  c10::InferenceMode inference;
  // Float32 products, and addends that would broadcast or are not dense, keep the steps.
  EXPECT_FALSE(onednn_linear_add_applies(x, w, b, {residual}));
  EXPECT_TRUE(torch::equal(linear_add(x, w, b, 1.0, {residual}), linear(x, w, b) + residual));
  AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
  const at::Tensor row = torch::randn({48});
  const at::Tensor strided = torch::randn({2, 48, 7}).transpose(1, 2);
  EXPECT_FALSE(onednn_linear_add_applies(x, w, b, {row}));
  EXPECT_FALSE(onednn_linear_add_applies(x, w, b, {strided}));
  EXPECT_TRUE(torch::equal(linear_add(x, w, b, 1.0, {row}), linear(x, w, b) + row));
  EXPECT_TRUE(torch::equal(linear_add(x, w, b, 1.0, {strided}), linear(x, w, b) + strided));
  try {
    onednn_linear_add(x, w, b, 1.0, {row});
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("addend [48]"), std::string::npos) << e.what();
  }
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
  if (!onednn_built()) GTEST_SKIP() << "built without oneDNN";
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

// The attention's operands: q, k and v are [batch, heads, seq, head] views of one projection
// output [batch, seq, 3 * hidden], as SelfAttention makes them.
struct Heads {
  at::Tensor q, k, v;
};

Heads heads_of(const at::Tensor& qkv, int64_t heads) {
  const int64_t batch = qkv.size(0), seq = qkv.size(1), hidden = qkv.size(2) / 3;
  auto split = [&](int64_t i) {
    return qkv.narrow(2, i * hidden, hidden)
        .view({batch, seq, heads, hidden / heads})
        .transpose(1, 2);
  };
  return {split(0), split(1), split(2)};
}

struct BatchedCase {
  int64_t batch, seq, heads, hidden;
};

void PrintTo(const BatchedCase& c, std::ostream* os) {
  *os << "batch" << c.batch << "_seq" << c.seq << "_heads" << c.heads << "_hidden" << c.hidden;
}

class OneDnnBatchedMatmulParity : public ::testing::TestWithParam<BatchedCase> {};

// Scores (q k^T) and context (probs v) as the attention computes them, and every gradient, against
// at::matmul on the same values; the context also laid out with the heads interleaved.
TEST_P(OneDnnBatchedMatmulParity, MatchesAtMatmulForwardAndBackward) {
  if (!onednn_built()) GTEST_SKIP() << "built without oneDNN";
  const BatchedCase c = GetParam();
  torch::manual_seed(11);
  const at::Tensor qkv0 = torch::randn({c.batch, c.seq, 3 * c.hidden});
  const at::Tensor qkv1 = qkv0.clone().set_requires_grad(true);
  const at::Tensor qkv2 = qkv0.clone().set_requires_grad(true);
  const Heads ours = heads_of(qkv1, c.heads);
  const Heads ref = heads_of(qkv2, c.heads);
  ASSERT_TRUE(onednn_batched_matmul_applies(ours.q, ours.k.transpose(-1, -2)));
  const at::Tensor scores =
      onednn_batched_matmul(ours.q, ours.k.transpose(-1, -2), BatchedProductOrder::kHeadsFirst);
  const at::Tensor scores_ref = at::matmul(ref.q, ref.k.transpose(-1, -2));
  expect_close(scores, scores_ref, "scores");
  EXPECT_TRUE(scores.is_contiguous());
  const at::Tensor context =
      onednn_batched_matmul(at::softmax(scores, -1), ours.v, BatchedProductOrder::kRowsFirst);
  const at::Tensor context_ref = at::matmul(at::softmax(scores_ref, -1), ref.v);
  expect_close(context, context_ref, "context");
  EXPECT_TRUE(context.transpose(1, 2).is_contiguous());  // heads interleaved: merging is a view
  const at::Tensor upstream = torch::randn(context_ref.sizes());
  (context * upstream).sum().backward();
  (context_ref * upstream).sum().backward();
  expect_close(qkv1.grad(), qkv2.grad(), "gradient of q, k and v");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, OneDnnBatchedMatmulParity,
    ::testing::Values(BatchedCase{4, 16, 4, 64},  // the main job's heads, short sequences
                      BatchedCase{2, 7, 3, 24},   // odd sizes
                      BatchedCase{1, 1, 2, 8},    // one request of one token
                      BatchedCase{3, 5, 1, 8},    // one head
                      BatchedCase{2, 9, 4, 4}));  // heads of size 1

TEST(OneDnnBatchedMatmul, BFloat16GivesAtMatmulsResults) {
  if (!onednn_built()) GTEST_SKIP() << "built without oneDNN";
  torch::manual_seed(5);
  const Heads h = heads_of(torch::randn({3, 12, 3 * 32}).to(at::kBFloat16), 4);
  if (!onednn_batched_matmul_applies(h.q, h.k.transpose(-1, -2)))
    GTEST_SKIP() << "oneDNN has no bfloat16 kernels on this CPU";
  const at::Tensor ours =
      onednn_batched_matmul(h.q, h.k.transpose(-1, -2), BatchedProductOrder::kHeadsFirst);
  const at::Tensor ref = at::matmul(h.q, h.k.transpose(-1, -2));
  EXPECT_EQ(ours.scalar_type(), at::kBFloat16);
  // Both accumulate in float32 and round once; allow one bfloat16 step of the largest value.
  const double step = ref.abs().max().item<double>() / 128.0;
  EXPECT_LE((ours.to(at::kFloat) - ref.to(at::kFloat)).abs().max().item<double>(), step);
}

TEST(OneDnnBatchedMatmul, OperandsWithoutAUnitStrideAreCopiedFirst) {
  if (!onednn_built()) GTEST_SKIP() << "built without oneDNN";
  torch::manual_seed(9);
  // Every second element of the last dimension: no unit stride in either of the last two.
  const at::Tensor a = torch::randn({2, 3, 5, 12}).slice(3, 0, 12, 2);
  const at::Tensor b = torch::randn({2, 3, 6, 4});
  ASSERT_TRUE(onednn_batched_matmul_applies(a, b));
  expect_close(onednn_batched_matmul(a, b, BatchedProductOrder::kHeadsFirst), at::matmul(a, b),
               "strided operand");
}

TEST(OneDnnBatchedMatmul, AppliesOnlyWhereItCanAndSaysWhyNot) {
  const at::Tensor a = torch::randn({2, 3, 4, 5});
  const at::Tensor b = torch::randn({2, 3, 5, 6});
  EXPECT_EQ(onednn_batched_matmul_applies(a, b), onednn_built());
  EXPECT_FALSE(onednn_batched_matmul_applies(a, b.to(at::kDouble)));  // dtypes differ
  EXPECT_FALSE(onednn_batched_matmul_applies(a.to(at::kDouble), b.to(at::kDouble)));
  EXPECT_FALSE(onednn_batched_matmul_applies(a, torch::randn({2, 3, 4, 6})));  // K differs
  EXPECT_FALSE(onednn_batched_matmul_applies(a, torch::randn({1, 3, 5, 6})));  // no broadcasting
  EXPECT_FALSE(onednn_batched_matmul_applies(a[0], b[0]));                     // 3-D
  EXPECT_FALSE(onednn_batched_matmul_applies(torch::randn({2, 3, 0, 5}), b));  // empty
  try {
    onednn_batched_matmul(a, torch::randn({2, 3, 4, 6}), BatchedProductOrder::kHeadsFirst);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3, 4, 6]"), std::string::npos) << e.what();
  }
  // batched_matmul() falls back to at::matmul wherever oneDNN does not apply.
  expect_close(batched_matmul(a.to(at::kDouble), b.to(at::kDouble), BatchedProductOrder::kRowsFirst)
                   .to(at::kFloat),
               at::matmul(a, b), "fallback");
}

TEST(OneDnnBatchedMatmul, FollowsAutocastsDtypeAndRecordsNoGraphWithoutGradients) {
  const at::Tensor a = torch::randn({2, 3, 4, 5}).set_requires_grad(true);
  const at::Tensor b = torch::randn({2, 3, 5, 6});
  {
    AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
    EXPECT_EQ(batched_matmul(a, b, BatchedProductOrder::kHeadsFirst).scalar_type(),
              at::matmul(a, b).scalar_type());
  }
  EXPECT_EQ(batched_matmul(a, b, BatchedProductOrder::kHeadsFirst).scalar_type(), at::kFloat);
  if (!onednn_built()) return;
  EXPECT_TRUE(onednn_batched_matmul(a, b, BatchedProductOrder::kHeadsFirst).requires_grad());
  torch::NoGradGuard no_grad;
  EXPECT_FALSE(onednn_batched_matmul(a, b, BatchedProductOrder::kHeadsFirst).requires_grad());
}

// The attention's probabilities under InferenceMode in bfloat16: softmax(scale q k^T + mask)
// computed from the bfloat16 heads in float32 and rounded once, for every mask shape the encoder
// makes (and none), with the heads read in place as views of the projections' output.
TEST(OneDnnAttentionProbabilities, MatchFloat32SoftmaxRoundedOnce) {
  if (!onednn_built() || !bf16_kernels()) GTEST_SKIP() << "no oneDNN bfloat16 kernels";
  torch::manual_seed(29);
  struct Shape {
    int64_t batch, heads, length, head_size;
  };
  for (const Shape shape : {Shape{3, 4, 9, 16}, Shape{1, 2, 5, 8}, Shape{2, 1, 7, 32}}) {
    SCOPED_TRACE(std::to_string(shape.batch) + "x" + std::to_string(shape.heads) + "x" +
                 std::to_string(shape.length));
    const int64_t hidden = shape.heads * shape.head_size;
    const at::Tensor projected =
        (torch::randn({shape.batch, shape.length, 3 * hidden}) * 2).to(at::kBFloat16);
    auto head = [&](int64_t which) {
      return projected.narrow(-1, which * hidden, hidden)
          .view({shape.batch, shape.length, shape.heads, shape.head_size})
          .transpose(1, 2);
    };
    const at::Tensor q = head(0);
    const at::Tensor k_t = head(1).transpose(-1, -2);
    at::Tensor keep = torch::ones({shape.batch, shape.length});
    keep.narrow(1, shape.length - 2, 2).select(0, 0).zero_();  // padding in the first example
    const double scale = 1.0 / std::sqrt(double(shape.head_size));
    for (const at::Tensor& mask :
         {at::Tensor(), ((1.0 - keep) * -3.0e38).view({shape.batch, 1, 1, shape.length}),
          ((1.0 - keep) * -10000.0)
              .view({shape.batch, 1, 1, shape.length})
              .expand({shape.batch, 1, shape.length, shape.length})
              .contiguous()
              .to(at::kBFloat16)}) {
      SCOPED_TRACE(mask.defined() ? detail::shape_string(mask) : std::string("no mask"));
      at::Tensor scores = at::matmul(q.to(at::kFloat), k_t.to(at::kFloat)) * scale;
      if (mask.defined()) scores = scores + mask.to(at::kFloat);
      const at::Tensor expected = at::softmax(scores, -1);
      c10::InferenceMode inference;
      ASSERT_TRUE(onednn_attention_probabilities_applies(q, k_t, mask));
      const at::Tensor got = onednn_attention_probabilities(q, k_t, mask, scale);
      ASSERT_EQ(got.scalar_type(), at::kBFloat16);
      ASSERT_EQ(got.sizes(), expected.sizes());
      // One rounding to bfloat16 (8 bits of mantissa) and oneDNN's exp: within two steps.
      EXPECT_LE((got.to(at::kFloat) - expected).abs().max().item<double>(), 2.0 / 256);
      const at::Tensor sums = got.to(at::kFloat).sum(-1);
      EXPECT_LE((sums - 1).abs().max().item<double>(), 0.02);
      if (mask.defined()) {
        // Padding gets no attention at all.
        EXPECT_EQ(got.select(0, 0).narrow(-1, shape.length - 2, 2).abs().max().item<double>(), 0);
      }
    }
  }
}

TEST(OneDnnAttentionProbabilities, AppliesOnlyWhereItCanAndSaysWhyNot) {
  const at::Tensor q = torch::randn({2, 4, 6, 8}).to(at::kBFloat16);
  const at::Tensor k_t = torch::randn({2, 4, 8, 6}).to(at::kBFloat16);
  const at::Tensor mask = torch::zeros({2, 1, 1, 6});
  EXPECT_FALSE(onednn_attention_probabilities_applies(q, k_t, mask)) << "outside InferenceMode";
  c10::InferenceMode inference;
  EXPECT_EQ(onednn_attention_probabilities_applies(q, k_t, mask), onednn_built() && bf16_kernels());
  EXPECT_FALSE(onednn_attention_probabilities_applies(q.to(at::kFloat), k_t.to(at::kFloat), mask));
  EXPECT_FALSE(onednn_attention_probabilities_applies(q, k_t, torch::zeros({2, 4, 6, 6})));
  EXPECT_FALSE(onednn_attention_probabilities_applies(q, k_t, torch::zeros({2, 1, 1, 5})));
  EXPECT_FALSE(onednn_attention_probabilities_applies(
      q, k_t, torch::zeros({2, 1, 6, 1}).expand({2, 1, 6, 6})));  // not contiguous
  try {
    onednn_attention_probabilities(q, k_t, torch::zeros({2, 1, 1, 5}), 1.0);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mask [2, 1, 1, 5]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace adaptertune
