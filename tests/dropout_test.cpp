// The encoder's dropout (src/dropout.h): at::dropout's distribution, a mask recomputed for the
// backward pass from its seed, reproducible whatever the thread count.

#include "dropout.h"

#include <cmath>
#include <limits>
#include <optional>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/bert_model.h"
#include "adaptertune/error.h"
#include "adaptertune/precision.h"
#include "test_util.h"

namespace adaptertune {
namespace {

class DropoutTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(DropoutTest);

constexpr int64_t kElements = int64_t{1} << 20;

TEST_P(DropoutTest, KeepsOneMinusPOfTheElementsAndScalesThem) {
  for (double p : {0.1, 0.5}) {
    torch::Tensor x = torch::ones({kElements}, device());
    torch::Tensor y = hashed_dropout(x, p, true).cpu();
    torch::Tensor kept = y != 0;
    // Binomial(2^20, 1-p): five standard deviations, under 0.25 % of the elements.
    const double sigma = std::sqrt(p * (1 - p) / kElements);
    EXPECT_NEAR(kept.to(torch::kDouble).mean().item<double>(), 1 - p, 5 * sigma) << "p = " << p;
    EXPECT_TRUE(torch::allclose(y.masked_select(kept), torch::full({1}, 1 / (1 - p))));
  }
}

TEST_P(DropoutTest, IsTheInputItselfInEvalModeAndAtZero) {
  torch::Tensor x = torch::randn({4, 8}, device());
  EXPECT_TRUE(hashed_dropout(x, 0.1, false).is_same(x));
  EXPECT_TRUE(hashed_dropout(x, 0.0, true).is_same(x));
}

TEST_P(DropoutTest, TheGradientIsTheSameMaskTimesTheScale) {
  const double p = 0.25;
  torch::Tensor x = (torch::rand({3, 64, 33}, device()) + 1).requires_grad_();
  torch::Tensor y = hashed_dropout(x, p, true);
  torch::Tensor upstream = torch::randn_like(y);
  y.backward(upstream);
  torch::Tensor expected = torch::where(y != 0, upstream / (1 - p), torch::zeros_like(upstream));
  EXPECT_TRUE(torch::allclose(x.grad(), expected, 1e-6, 1e-6));
  EXPECT_GT((y == 0).sum().item<int64_t>(), 0);
}

TEST_P(DropoutTest, ScalesEveryFloatingTypeInItsOwnPrecision) {
  for (auto dtype : {torch::kDouble, torch::kFloat, torch::kBFloat16}) {
    torch::Tensor x = torch::rand({1000}, torch::TensorOptions(device()).dtype(torch::kDouble)) + 1;
    torch::Tensor y = hashed_dropout(x.to(dtype), 0.1, true);
    ASSERT_EQ(y.scalar_type(), dtype);
    torch::Tensor kept = y != 0;
    torch::Tensor expected = (x.to(dtype).to(torch::kDouble) / 0.9).masked_select(kept);
    const double tolerance = dtype == torch::kBFloat16 ? 1e-2 : 1e-6;
    EXPECT_TRUE(torch::allclose(y.to(torch::kDouble).masked_select(kept), expected, tolerance))
        << dtype;
  }
}

// float and bfloat16 have vectorised loops (one per instruction set); double and half the
// generic one. One seed must give every dtype the same mask, and bfloat16 and half the bits of the
// float result rounded to them, with infinities, signed zeros, a subnormal, a NaN and an odd
// length.
TEST(Dropout, TheVectorisedLoopsGiveTheGenericLoopsBits) {
  const uint64_t seed = 0x1234567890ABCDEFULL;
  torch::Tensor x = torch::randn({2 * 512 * 3 + 7}, torch::kDouble) * 100;
  x[0] = std::numeric_limits<double>::quiet_NaN();
  x[1] = std::numeric_limits<double>::infinity();
  x[2] = -std::numeric_limits<double>::infinity();
  x[3] = -0.0;
  x[4] = 1e-40;  // subnormal in float
  for (double p : {0.1, 0.5, 0.9}) {
    const torch::Tensor as_float = detail::apply_hashed_dropout_mask(x.to(torch::kFloat), p, seed);
    const torch::Tensor as_double = detail::apply_hashed_dropout_mask(x, p, seed);
    EXPECT_TRUE(torch::equal(as_float == 0, as_double == 0)) << "p = " << p;
    for (auto dtype : {torch::kBFloat16, torch::kHalf}) {
      // The float input rounded to the dtype first, as the dtype's loop sees it.
      const torch::Tensor input = x.to(dtype);
      const torch::Tensor reference =
          detail::apply_hashed_dropout_mask(input.to(torch::kFloat), p, seed).to(dtype);
      const torch::Tensor result = detail::apply_hashed_dropout_mask(input, p, seed);
      // Bit for bit, and NaN where NaN (LibTorch's own conversion spells a NaN 0xFFFF, the
      // scalar c10::BFloat16 0x7FC0: both NaN).
      const torch::Tensor nan = reference.isnan();
      EXPECT_TRUE(torch::equal(result.isnan(), nan)) << dtype << ", p = " << p;
      EXPECT_TRUE(torch::equal(result.view(torch::kShort).masked_select(~nan),
                               reference.view(torch::kShort).masked_select(~nan)))
          << dtype << ", p = " << p;
    }
  }
}

TEST(Dropout, TheSameSeedGivesTheSameMaskWhateverTheThreadCount) {
  const int threads = torch::get_num_threads();
  torch::Tensor x = torch::ones({3, kElements / 3});
  torch::manual_seed(7);
  torch::set_num_threads(1);
  torch::Tensor one_thread = hashed_dropout(x, 0.1, true);
  torch::manual_seed(7);
  torch::set_num_threads(std::max(2, threads));
  torch::Tensor many_threads = hashed_dropout(x, 0.1, true);
  torch::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one_thread, many_threads));
  EXPECT_FALSE(torch::equal(one_thread, hashed_dropout(x, 0.1, true)))
      << "each call draws a new mask";
}

TEST(Dropout, NeighbouringElementsAreIndependent) {
  // Two elements share each 64-bit hash; their keep bits must still be independent, and so must
  // elements a row apart.
  torch::Tensor kept = hashed_dropout(torch::ones({kElements}), 0.5, true) != 0;
  torch::Tensor even = kept.slice(0, 0, kElements, 2);
  torch::Tensor odd = kept.slice(0, 1, kElements, 2);
  const double pairs = static_cast<double>(kElements / 2);
  const double sigma = std::sqrt(0.25 * 0.75 / pairs);
  EXPECT_NEAR((even & odd).sum().item<int64_t>() / pairs, 0.25, 5 * sigma);
  EXPECT_NEAR((even.slice(0, 1) & even.slice(0, 0, -1)).sum().item<int64_t>() / (pairs - 1), 0.25,
              5 * sigma);
}

TEST(Dropout, TakesNonContiguousInput) {
  torch::Tensor x = torch::rand({16, 24}) + 1;
  torch::Tensor y = hashed_dropout(x.t(), 0.2, true);
  ASSERT_EQ(y.sizes(), x.t().sizes());
  torch::Tensor kept = y != 0;
  EXPECT_TRUE(torch::allclose(y.masked_select(kept), x.t().masked_select(kept) / 0.8));
}

TEST(Dropout, RejectsWhatItCannotApply) {
  EXPECT_ERROR_CONTAINS(hashed_dropout(torch::ones({4}), -0.1, true), "[0, 1]");
  // Whatever the mode or device would do next: the check comes first.
  EXPECT_ERROR_CONTAINS(hashed_dropout(torch::ones({4}), 1.5, false), "[0, 1]");
  EXPECT_ERROR_CONTAINS(hashed_dropout(torch::ones({4}), std::nan(""), true), "[0, 1]");
  EXPECT_TRUE(hashed_dropout(torch::ones({4}), 1.0, true).eq(0).all().item<bool>());
  EXPECT_ERROR_CONTAINS(detail::apply_hashed_dropout_mask(torch::ones({4}, torch::kLong), 0.1, 1),
                        "floating-point");
  EXPECT_ERROR_CONTAINS(detail::apply_hashed_dropout_mask(torch::ones({4, 4}).t(), 0.1, 1),
                        "not contiguous");
}

TEST(Dropout, ATrainingForwardIsReproducibleAndDiffersFromEval) {
  // The model's own dropout layers go through dropout.h: training mode changes the output, and
  // the same seed repeats it.
  BertConfig config = testing::tiny_config();
  BertModel model(config);
  torch::Tensor ids = torch::randint(0, config.vocab_size, {2, 10});
  model->eval();
  torch::Tensor eval_output = model(ids).last_hidden_state;
  model->train();
  torch::manual_seed(3);
  torch::Tensor first = model(ids).last_hidden_state;
  torch::manual_seed(3);
  torch::Tensor again = model(ids).last_hidden_state;
  EXPECT_TRUE(torch::equal(first, again));
  EXPECT_FALSE(torch::allclose(first, eval_output));
}

// hashed_dropout_matmul(): the attention's dropout and product in one, keeping no dropped
// probabilities for backward; the same bits as the two steps, forward and backward.
TEST(HashedDropoutMatmul, GivesTheSameBitsAsDropoutThenTheProduct) {
  for (const bool bf16 : {false, true}) {
    torch::manual_seed(5);
    // As in the attention: scores from a leaf, values a rows-first view of a projection's output.
    const torch::Tensor scores = torch::randn({2, 3, 6, 6}).requires_grad_(true);
    const torch::Tensor projection = torch::randn({2, 6, 3 * 4}).requires_grad_(true);
    const torch::Tensor upstream = torch::randn({2, 3, 6, 4});
    auto run = [&](bool fused) {
      std::optional<AutocastGuard> autocast;
      if (bf16) autocast.emplace(torch::kCPU, Precision::kBFloat16);
      const torch::Tensor values = projection.view({2, 6, 3, 4}).transpose(1, 2);
      torch::manual_seed(11);  // the same mask's seed for both
      const torch::Tensor probs = at::softmax(scores, -1);
      torch::Tensor context =
          fused ? hashed_dropout_matmul(probs, values, 0.3, true, BatchedProductOrder::kRowsFirst)
                : batched_matmul(hashed_dropout(probs, 0.3, true), values,
                                 BatchedProductOrder::kRowsFirst);
      autocast.reset();
      auto grads = torch::autograd::grad({context}, {scores, projection},
                                         {upstream.to(context.scalar_type())});
      return std::vector<torch::Tensor>{context, grads[0], grads[1]};
    };
    const std::vector<torch::Tensor> expected = run(false);
    const std::vector<torch::Tensor> got = run(true);
    EXPECT_EQ(got[0].scalar_type(), bf16 ? torch::kBFloat16 : torch::kFloat);
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_TRUE(torch::equal(got[i], expected[i]))
          << (bf16 ? "bf16 " : "fp32 ") << "output " << i;
    }
  }
}

TEST(HashedDropoutMatmul, IsThePlainProductInEvalModeAndChecksP) {
  const torch::Tensor probs = at::softmax(torch::randn({1, 2, 3, 3}), -1);
  const torch::Tensor values = torch::randn({1, 2, 3, 4});
  EXPECT_TRUE(torch::equal(
      hashed_dropout_matmul(probs, values, 0.3, false, BatchedProductOrder::kHeadsFirst),
      batched_matmul(probs, values, BatchedProductOrder::kHeadsFirst)));
  EXPECT_THROW(hashed_dropout_matmul(probs, values, 1.5, true, BatchedProductOrder::kHeadsFirst),
               Error);
}

TEST(HashedDropoutMatmul, NoDropoutNodeSitsBetweenSoftmaxAndTheProduct) {
  // One node from the softmax's output to the context: no dropout node between them, which would
  // keep the dropped probabilities for the product's backward.
  const torch::Tensor scores = torch::randn({2, 3, 6, 6}).requires_grad_(true);
  const torch::Tensor values = torch::randn({2, 3, 6, 4}).requires_grad_(true);
  const torch::Tensor probs = at::softmax(scores, -1);
  const torch::Tensor context =
      hashed_dropout_matmul(probs, values, 0.3, true, BatchedProductOrder::kHeadsFirst);
  ASSERT_TRUE(context.grad_fn());
  const auto& next = context.grad_fn()->next_edges();
  ASSERT_EQ(next.size(), 2u);
  EXPECT_EQ(next[0].function, probs.grad_fn()) << "the probabilities' gradient goes to softmax";
}

// DropoutRows: each process of a group drops its slice of a batch as one process drops those rows
// of the whole batch, given the same seed.
TEST(DropoutRows, AMaskFromAnyElementOnIsThatPartOfTheWholeMask) {
  // Across the kernel's blocks (1,024 elements) and threads, from odd and even elements.
  const torch::Tensor x = torch::randn({100001});
  const torch::Tensor whole = detail::apply_hashed_dropout_mask(x, 0.3, 99);
  for (const int64_t first : {1, 2, 1023, 1025, 40001, 100000}) {
    const torch::Tensor part =
        detail::apply_hashed_dropout_mask(x.slice(0, first).contiguous(), 0.3, 99, first);
    EXPECT_TRUE(torch::equal(part, whole.slice(0, first))) << "from element " << first;
  }
  EXPECT_ERROR_CONTAINS(detail::apply_hashed_dropout_mask(x, 0.3, 99, -1), "negative");
}

TEST(DropoutRows, ASliceDropsAsThoseRowsOfTheWholeBatchForwardAndBackward) {
  // 21 elements a row: slices start at odd elements too.
  const torch::Tensor batch = torch::randn({5, 3, 7});
  const torch::Tensor upstream = torch::randn({5, 3, 7});
  auto dropped = [&](int64_t first, int64_t rows, bool guarded) {
    const torch::Tensor input = batch.slice(0, first, first + rows).clone().requires_grad_(true);
    torch::manual_seed(42);
    torch::Tensor out;
    {
      std::optional<DropoutRows> guard;
      if (guarded) guard.emplace(first, rows);
      out = hashed_dropout(input, 0.4, true);
    }
    // Backward outside the guard: the forward pass's rows hold.
    const torch::Tensor grad =
        torch::autograd::grad({out}, {input}, {upstream.slice(0, first, first + rows)})[0];
    return std::make_pair(out, grad);
  };
  const auto [whole, whole_grad] = dropped(0, 5, false);
  for (const auto& [first, rows] : {std::pair<int64_t, int64_t>{0, 2}, {2, 3}, {1, 1}}) {
    const auto [part, part_grad] = dropped(first, rows, true);
    EXPECT_TRUE(torch::equal(part, whole.slice(0, first, first + rows))) << "rows from " << first;
    EXPECT_TRUE(torch::equal(part_grad, whole_grad.slice(0, first, first + rows)));
  }
  const auto [unplaced, unplaced_grad] = dropped(2, 3, false);
  EXPECT_FALSE(torch::equal(unplaced, whole.slice(0, 2, 5))) << "without the guard: rows 0-2's";
}

TEST(DropoutRows, TheAttentionsDropoutAndProductFollowTheRows) {
  const torch::Tensor probs = at::softmax(torch::randn({4, 2, 5, 5}), -1);
  const torch::Tensor values = torch::randn({4, 2, 5, 3});
  const torch::Tensor upstream = torch::randn({4, 2, 5, 3});
  auto run = [&](int64_t first, int64_t rows) {
    const torch::Tensor p = probs.slice(0, first, first + rows).clone().requires_grad_(true);
    torch::manual_seed(5);
    const DropoutRows guard(first, rows);
    const torch::Tensor context = hashed_dropout_matmul(p, values.slice(0, first, first + rows),
                                                        0.3, true, BatchedProductOrder::kRowsFirst);
    const torch::Tensor grad =
        torch::autograd::grad({context}, {p}, {upstream.slice(0, first, first + rows)})[0];
    return std::make_pair(context, grad);
  };
  const auto [whole, whole_grad] = run(0, 4);
  const auto [part, part_grad] = run(1, 3);
  EXPECT_TRUE(torch::equal(part, whole.slice(0, 1, 4)));
  EXPECT_TRUE(torch::equal(part_grad, whole_grad.slice(0, 1, 4)));
}

TEST(DropoutRows, NestsAndChecksItsRows) {
  using Rows = std::pair<int64_t, int64_t>;
  EXPECT_EQ(DropoutRows::current(), Rows(0, 0));
  {
    const DropoutRows outer(4, 2);
    {
      const DropoutRows none(0, 0);
      EXPECT_EQ(DropoutRows::current(), Rows(0, 0));
    }
    EXPECT_EQ(DropoutRows::current(), Rows(4, 2));
    EXPECT_ERROR_CONTAINS(hashed_dropout(torch::ones({3, 2}), 0.5, true),
                          "2 rows of a batch were expected");
    EXPECT_ERROR_CONTAINS(hashed_dropout(torch::ones({}), 0.5, true), "2 rows");
  }
  {
    const DropoutRows first(0, 2);  // the first process's slice is checked as the others are
    EXPECT_ERROR_CONTAINS(hashed_dropout(torch::ones({3, 2}), 0.5, true), "2 rows");
  }
  EXPECT_EQ(DropoutRows::current(), Rows(0, 0));
  EXPECT_ERROR_CONTAINS(DropoutRows(-1, 2), "first row >= 0");
  EXPECT_ERROR_CONTAINS(DropoutRows(1, 0), "rows > 0");
  EXPECT_ERROR_CONTAINS(DropoutRows(0, -3), "rows > 0");
}

}  // namespace
}  // namespace adaptertune
