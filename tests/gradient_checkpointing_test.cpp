// Gradient checkpointing (BertEncoderImpl::set_gradient_checkpointing): the same losses and
// gradients as an ordinary pass, dropout and autocast included.

#include <map>
#include <optional>

#include <torch/torch.h>

#include "adaptertune/adapter_config.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/head_config.h"
#include "adaptertune/precision.h"
#include "adaptertune/training/freeze_policy.h"
#include "dropout.h"
#include "layers/gradient_checkpoint.h"
#include "test_util.h"

namespace adaptertune {
namespace {

class GradientCheckpointingTest : public testing::DeviceTest {
 protected:
  // A tiny classifier with dropout, readied to train a Houlsby adapter (the adapters, the
  // LayerNorms and the head train), with or without checkpointing.
  BertForSequenceClassification adapter_model(bool checkpointing) {
    torch::manual_seed(21);
    BertForSequenceClassification model(testing::tiny_config(), HeadConfig{});
    model->bert->add_adapter("task", AdapterConfig::houlsby());
    testing::randomize_task_tensors(*model);
    model->to(device());
    prepare_task_training(*model, "task", FreezePolicy{});
    model->bert->encoder->set_gradient_checkpointing(checkpointing);
    model->train();
    return model;
  }

  // One forward and backward pass in `precision` from a fixed generator state; the loss.
  torch::Tensor step(BertForSequenceClassification& model, Precision precision) {
    const torch::Tensor input = testing::random_ids(4, 9).to(device());
    const torch::Tensor mask =
        torch::tensor({{1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 0, 0, 0}}, torch::kLong)
            .repeat({2, 1})
            .to(device());
    const torch::Tensor labels = torch::tensor({0, 1, 1, 0}, torch::kLong).to(device());
    torch::manual_seed(99);  // the dropout masks
    torch::Tensor loss;
    {
      AutocastGuard autocast(device(), precision);
      loss = model->loss(model(input, mask), labels);
    }
    loss.backward();
    return loss.detach();
  }
};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(GradientCheckpointingTest);

std::map<std::string, torch::Tensor> gradients(torch::nn::Module& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model.named_parameters()) {
    if (item.value().grad().defined()) out[item.key()] = item.value().grad().clone();
  }
  return out;
}

TEST_P(GradientCheckpointingTest, SameLossAndGradientsWithDropoutAndAutocast) {
  for (Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    BertForSequenceClassification plain = adapter_model(false);
    BertForSequenceClassification checkpointed = adapter_model(true);
    const torch::Tensor plain_loss = step(plain, precision);
    const double after_plain = torch::rand({1}).item<double>();
    const torch::Tensor checkpointed_loss = step(checkpointed, precision);
    // Backward ran the layers again with the masks of the first run, and then put the generator
    // back: what is drawn next is what an ordinary pass leaves.
    EXPECT_EQ(torch::rand({1}).item<double>(), after_plain) << precision_name(precision);
    EXPECT_TRUE(torch::equal(checkpointed_loss, plain_loss)) << precision_name(precision);
    std::map<std::string, torch::Tensor> expected = gradients(*plain);
    std::map<std::string, torch::Tensor> got = gradients(*checkpointed);
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_GT(expected.size(), 10u) << "adapters, LayerNorms and the head";
    for (const auto& [name, gradient] : expected) {
      ASSERT_TRUE(got.count(name)) << name;
      EXPECT_LE(testing::max_abs_diff(got[name], gradient),
                1e-6 * (1 + gradient.abs().max().item<double>()))
          << name << " " << precision_name(precision);
    }
  }
}

TEST_P(GradientCheckpointingTest, AdaptersTrainWhenNoLayerInputNeedsAGradient) {
  // Only the adapters train: the embeddings' output needs no gradient, so the gradients reach
  // the checkpointed layers through their parameters alone.
  auto adapters_only = [&](bool checkpointing) {
    BertForSequenceClassification model = adapter_model(checkpointing);
    for (const auto& item : model->named_parameters()) {
      item.value().set_requires_grad(item.key().find("adapters") != std::string::npos);
    }
    return model;
  };
  BertForSequenceClassification plain = adapters_only(false);
  BertForSequenceClassification checkpointed = adapters_only(true);
  step(plain, Precision::kFloat32);
  step(checkpointed, Precision::kFloat32);
  std::map<std::string, torch::Tensor> expected = gradients(*plain);
  std::map<std::string, torch::Tensor> got = gradients(*checkpointed);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(got.size(), expected.size());
  for (const auto& [name, gradient] : expected) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_LE(testing::max_abs_diff(got[name], gradient), 1e-6) << name;
  }
}

TEST_P(GradientCheckpointingTest, PassesWithoutGradientsAreUnchanged) {
  BertForSequenceClassification plain = adapter_model(false);
  BertForSequenceClassification checkpointed = adapter_model(true);
  plain->eval();
  checkpointed->eval();
  const torch::Tensor input = testing::random_ids(2, 7).to(device());
  torch::NoGradGuard no_grad;
  const torch::Tensor out = checkpointed(input, torch::Tensor());
  EXPECT_FALSE(out.requires_grad());
  EXPECT_TRUE(torch::equal(out, plain(input, torch::Tensor())));
}

// A checkpoint inside another (the attention's probabilities inside a checkpointed layer) runs
// twice in all, as the outer one does, not three times, with the same gradient.
TEST(GradientCheckpointing, ANestedCheckpointRunsPlainlyInsideTheOuterOnesSecondRun) {
  torch::nn::Linear layer(3, 3);
  const torch::Tensor x = torch::randn({2, 3}, torch::requires_grad());
  int inner_runs = 0;
  auto inner = [&](const torch::Tensor& t) {
    ++inner_runs;
    return torch::tanh(t) * t;
  };
  auto outer = [&](const torch::Tensor& t) {
    return detail::checkpointed(layer(t), inner).sum(-1);
  };
  const torch::Tensor expected_grad = torch::autograd::grad({outer(x).sum()}, {x})[0];
  inner_runs = 0;
  const torch::Tensor nested = detail::checkpointed(*layer, x, outer).sum();
  const torch::Tensor grad = torch::autograd::grad({nested}, {x})[0];
  EXPECT_EQ(inner_runs, 2) << "the first run and the outer checkpoint's second";
  EXPECT_TRUE(torch::allclose(grad, expected_grad));
}

// The second run drops as the first did though backward runs outside the first's DropoutRows
// (a process's slice of a group's batch): the gradient is the plain run's.
TEST(GradientCheckpointing, TheSecondRunDropsTheFirstRunsRowsOfTheBatch) {
  const torch::Tensor x = torch::randn({3, 4, 5}, torch::requires_grad());
  auto drop = [](const torch::Tensor& t) { return hashed_dropout(t * t, 0.5, true); };
  auto gradient = [&](bool checkpoint) {
    torch::manual_seed(8);
    torch::Tensor out;
    {
      const DropoutRows rows(5, 3);
      out = checkpoint ? detail::checkpointed(x, drop) : drop(x);
    }
    return torch::autograd::grad({out.sum()}, {x})[0];
  };
  const torch::Tensor expected = gradient(false);
  EXPECT_TRUE(torch::equal(gradient(true), expected));
  torch::manual_seed(8);
  const torch::Tensor whole_batch = torch::autograd::grad({drop(x).sum()}, {x})[0];
  EXPECT_FALSE(torch::equal(whole_batch, expected)) << "the rows changed the mask";
}

}  // namespace
}  // namespace adaptertune
