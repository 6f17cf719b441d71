#include "adaptertune/training/training_engine.h"

#include <torch/torch.h>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "test_util.h"

namespace adaptertune {
namespace {

// A linear layer and a fixed regression batch of four.
struct Toy {
  torch::nn::Linear layer{torch::nn::LinearOptions(3, 1)};
  torch::Tensor x = torch::arange(12, torch::kFloat).reshape({4, 3}) / 10;
  torch::Tensor y = torch::tensor({1.0f, -1.0f, 0.5f, 2.0f}).reshape({4, 1});
  torch::Tensor loss(int64_t begin, int64_t end) {
    return torch::mse_loss(layer(x.slice(0, begin, end)), y.slice(0, begin, end));
  }
};

TrainingEngineOptions engine_options(const std::string& dir, int64_t accumulation = 1) {
  TrainingEngineOptions options;
  options.lr = 0.1;
  options.total_steps = 10;
  options.gradient_accumulation = accumulation;
  options.checkpoint_dir = dir;
  return options;
}

TEST(TrainingEngine, AccumulatedHalvesStepLikeTheWholeBatch) {
  const std::string dir = testing::fresh_dir("engine_accumulation");
  torch::manual_seed(0);
  Toy whole;
  Toy halves;
  {
    torch::NoGradGuard no_grad;
    halves.layer->weight.copy_(whole.layer->weight);
    halves.layer->bias.copy_(whole.layer->bias);
  }
  TrainingEngine one(*whole.layer, engine_options(dir + "/a"));
  TrainingEngine two(*halves.layer, engine_options(dir + "/b", 2));
  for (int step = 0; step < 3; ++step) {
    one.backward(whole.loss(0, 4));
    one.step();
    two.backward(halves.loss(0, 2));
    two.backward(halves.loss(2, 4));
    two.step();
  }
  EXPECT_EQ(one.state().global_step, 3);
  EXPECT_EQ(two.state().global_step, 3);
  EXPECT_LT(testing::max_abs_diff(whole.layer->weight, halves.layer->weight), 1e-6);
  EXPECT_LT(testing::max_abs_diff(whole.layer->bias, halves.layer->bias), 1e-6);
  // A step clears the gradients.
  EXPECT_FALSE(whole.layer->weight.grad().defined() &&
               whole.layer->weight.grad().abs().sum().item<double>() > 0);
}

TEST(TrainingEngine, StepsFollowTheScheduleWithItsWarmupRounded) {
  Toy toy;
  TrainingEngineOptions options = engine_options(testing::fresh_dir("engine_schedule"));
  options.total_steps = 100;
  options.warmup_ratio = 0.29;  // 29 steps, not the 28 that truncating 28.999… gives
  TrainingEngine engine(*toy.layer, options);
  EXPECT_EQ(engine.schedule().warmup_steps, 29);
  for (int64_t step = 0; step < 3; ++step) {
    toy.loss(0, 4).backward();
    EXPECT_DOUBLE_EQ(engine.step(), engine.schedule().lr_at(step));
    EXPECT_DOUBLE_EQ(engine.optimizer().lr(), engine.schedule().lr_at(step));
  }
}

TEST(TrainingEngine, ResumeChecksTheDataThenLoadsOrLeavesTheModelAlone) {
  const std::string dir = testing::fresh_dir("engine_resume");
  torch::manual_seed(0);
  Toy toy;
  TrainingEngine engine(*toy.layer, engine_options(dir));
  engine.backward(toy.loss(0, 4));
  engine.step();
  engine.state().epoch = 0;
  engine.state().batch_in_epoch = 1;
  const std::string saved_dir =
      engine.save_checkpoint(R"({"examples": 4, "text_sha256": "aa"})", R"({"best": 0.5})");
  const torch::Tensor saved = toy.layer->weight.clone();

  Toy other;  // another start, to be replaced by the checkpoint
  TrainingEngine resumed(*other.layer, engine_options(dir));
  const torch::Tensor fresh = other.layer->weight.clone();
  DataShape shape;
  shape.batches_per_epoch = 1;
  shape.data_seed = 42;
  EXPECT_ERROR_CONTAINS(resumed.resume(shape, R"({"examples": 4, "text_sha256": "bb"})"),
                        "checkpoint-1/trainer_state.json: key 'extra': the checkpoint was made "
                        "with text_sha256 \"aa\", this run has \"bb\" (other training data)");
  EXPECT_ERROR_CONTAINS(resumed.resume(shape, R"({"examples": 5})"),
                        "made with examples 4, this run has 5");
  EXPECT_ERROR_CONTAINS(resumed.resume(shape, R"({"examples": 4, "text_sha256": "aa"})",
                                       [](const TrainingState&, const std::string& path) {
                                         throw Error(path + ": not my state");
                                       }),
                        "trainer_state.json: not my state");
  EXPECT_TRUE(torch::equal(other.layer->weight, fresh)) << "a refused checkpoint changed nothing";

  std::string seen;
  const auto loaded = resumed.resume(
      shape, R"({"examples": 4, "text_sha256": "aa"})",
      [&](const TrainingState& state, const std::string&) { seen = state.extra_json; });
  ASSERT_TRUE(loaded);
  EXPECT_EQ(*loaded, saved_dir);
  EXPECT_NE(seen.find("\"best\":0.5"), std::string::npos) << seen;
  EXPECT_EQ(resumed.state().global_step, 1);
  EXPECT_TRUE(torch::equal(other.layer->weight, saved));

  TrainingEngine empty(*other.layer, engine_options(dir + "/none"));
  EXPECT_FALSE(empty.resume(shape, "{}"));
}

TEST(TrainingEngine, OptionsOutOfRangeAreRefusedByName) {
  Toy toy;
  TrainingEngineOptions options = engine_options(testing::fresh_dir("engine_options"));
  options.gradient_accumulation = 0;
  EXPECT_ERROR_CONTAINS(TrainingEngine(*toy.layer, options), "gradient_accumulation");
  options = engine_options("");
  EXPECT_ERROR_CONTAINS(TrainingEngine(*toy.layer, options), "checkpoint_dir is empty");
  options = engine_options("x");
  options.max_grad_norm = -1;
  EXPECT_ERROR_CONTAINS(TrainingEngine(*toy.layer, options), "max_grad_norm");
}

}  // namespace
}  // namespace adaptertune
