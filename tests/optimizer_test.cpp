#include "adaptertune/training/optimizer.h"

#include <torch/optim/adamw.h>

#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/training/freeze_policy.h"
#include "test_util.h"

namespace adaptertune {
namespace {

class AdamWTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(AdamWTest);

// LibTorch's own AdamW is the reference: same hyper-parameters, same gradients, several steps.
TEST_P(AdamWTest, MatchesLibTorchAdamW) {
  auto make = [&] {
    torch::manual_seed(7);
    return std::vector<torch::Tensor>{torch::randn({5, 3}, device()).requires_grad_(),
                                      torch::randn({7}, device()).requires_grad_()};
  };
  auto ours_params = make();
  auto reference_params = make();
  AdamWOptions options;
  options.lr = 0.05;
  options.beta1 = 0.8;
  options.beta2 = 0.95;
  options.eps = 1e-6;
  OptimizerGroup decay{{ours_params[0]}, {"w"}, 0.1};
  OptimizerGroup no_decay{{ours_params[1]}, {"b"}, 0.0};
  AdamW ours({decay, no_decay}, options);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      std::vector<torch::Tensor>{reference_params[0]},
      std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(0.05).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.1)));
  groups.emplace_back(
      std::vector<torch::Tensor>{reference_params[1]},
      std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(0.05).betas({0.8, 0.95}).eps(1e-6).weight_decay(0)));
  torch::optim::AdamW reference(groups);
  for (int step = 0; step < 5; ++step) {
    auto grad_seed = torch::randn({5, 3}, device());
    auto grad_seed_b = torch::randn({7}, device());
    ours.zero_grad();
    reference.zero_grad();
    ((ours_params[0] * grad_seed).sum() + (ours_params[1] * grad_seed_b).pow(2).sum()).backward();
    ((reference_params[0] * grad_seed).sum() + (reference_params[1] * grad_seed_b).pow(2).sum())
        .backward();
    ours.step();
    reference.step();
  }
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(torch::allclose(ours_params[i], reference_params[i], 1e-5, 1e-6))
        << testing::max_abs_diff(ours_params[i], reference_params[i]);
  }
  EXPECT_EQ(ours.state()[0].steps[0], 5);
}

// The fused CPU pass (the default) against the multi-tensor kernels, on tensors large enough to
// be split between threads, of odd length, with and without weight decay, over several steps.
TEST(AdamW, TheFusedCpuPassAgreesWithTheMultiTensorKernels) {
  auto make = [] {
    torch::manual_seed(11);
    return std::vector<torch::Tensor>{torch::randn({257, 513}).requires_grad_(),
                                      torch::randn({1001}).requires_grad_()};
  };
  auto fused_params = make();
  auto reference_params = make();
  AdamWOptions options;
  options.lr = 0.01;
  AdamWOptions unfused = options;
  unfused.fused = false;
  AdamW fused({{{fused_params[0]}, {"w"}, 0.01}, {{fused_params[1]}, {"b"}, 0.0}}, options);
  AdamW reference({{{reference_params[0]}, {"w"}, 0.01}, {{reference_params[1]}, {"b"}, 0.0}},
                  unfused);
  for (int step = 0; step < 4; ++step) {
    const torch::Tensor upstream = torch::randn({257, 513});
    const torch::Tensor upstream_b = torch::randn({1001});
    for (auto* run : {&fused_params, &reference_params}) {
      ((*run)[0] * upstream).sum().backward();
      ((*run)[1] * upstream_b).pow(2).sum().backward();
    }
    fused.step();
    reference.step();
    fused.zero_grad();
    reference.zero_grad();
  }
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(torch::allclose(fused_params[i], reference_params[i], 1e-6, 1e-7))
        << testing::max_abs_diff(fused_params[i], reference_params[i]);
    // The moments too: a checkpoint holds them.
    EXPECT_TRUE(torch::allclose(fused.state()[i].exp_avg_sq[0], reference.state()[i].exp_avg_sq[0],
                                1e-6, 1e-12));
  }
  EXPECT_FALSE(torch::equal(fused_params[0], make()[0]));  // it moved

  // Like an in-place ATen operation, the step bumps the version: a graph that saved the
  // parameter refuses to backpropagate through the new values.
  const torch::Tensor saved = (fused_params[0] * fused_params[0]).sum();
  ((fused_params[0] * torch::ones({257, 513})).sum()).backward();
  fused.step();
  EXPECT_THROW(saved.backward(), c10::Error);
}

TEST(AdamW, WeightDecayGroupsExcludeBiasesAndLayerNorms) {
  BertForSequenceClassification model(testing::tiny_config(), HeadConfig{});
  model->bert->add_adapter("a", AdapterConfig::houlsby());
  prepare_task_training(*model, "a", FreezePolicy{});
  auto groups = weight_decay_groups(*model, 0.01);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_DOUBLE_EQ(groups[0].weight_decay, 0.01);
  EXPECT_DOUBLE_EQ(groups[1].weight_decay, 0.0);
  for (const auto& name : groups[0].names) {
    EXPECT_TRUE(name.find(".weight") != std::string::npos &&
                name.find("LayerNorm") == std::string::npos)
        << name;
  }
  for (const auto& name : groups[1].names) {
    EXPECT_TRUE(name.find(".bias") != std::string::npos ||
                name.find("LayerNorm") != std::string::npos)
        << name;
  }
  size_t total = groups[0].params.size() + groups[1].params.size();
  EXPECT_EQ(total, trainable_parameters(*model).size());
}

TEST(AdamW, SkipsParametersWithoutGradientAndValidatesState) {
  auto a = torch::ones({2}).requires_grad_();
  auto b = torch::ones({3}).requires_grad_();
  AdamW optimizer({OptimizerGroup{{a, b}, {"a", "b"}, 0.0}}, AdamWOptions{});
  (a * 2).sum().backward();
  optimizer.step();
  EXPECT_FALSE(torch::equal(a, torch::ones({2})));
  EXPECT_TRUE(torch::equal(b, torch::ones({3})));
  EXPECT_EQ(optimizer.state()[0].steps, (std::vector<int64_t>{1, 0}));
  auto state = optimizer.state();
  state[0].exp_avg[1] = torch::zeros({4});
  EXPECT_ERROR_CONTAINS(optimizer.load_state(state),
                        "AdamW state for b: shape [4], parameter has [3]");
  EXPECT_ERROR_CONTAINS(AdamW({}, AdamWOptions{0.1, 1.5}), "betas must lie in [0, 1)");
}

}  // namespace
}  // namespace adaptertune
