#include "training/fine_tuning_loop.h"

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "adaptertune/training/interrupt.h"
#include "adaptertune/training/training_engine.h"
#include "test_util.h"
#include "training/run_files.h"

namespace adaptertune {
namespace {

// A linear layer trained on batches of one row each, and a record of what the loop asked for.
struct LoopRecord {
  torch::nn::Linear layer{torch::nn::LinearOptions(3, 1)};
  std::vector<int64_t> epochs_begun;
  std::vector<std::pair<int64_t, int64_t>> batches;  // (epoch, batch) trained
  std::vector<int64_t> evaluated, checkpointed;      // at these global steps
  std::vector<nlohmann::ordered_json> logged;
  std::vector<double> stepped;  // each optimizer step's loss
  TrainerOptions options;
  TrainResult result;

  LoopRecord() {
    options.batch_size = 1;
    options.gradient_accumulation = 2;
    options.log_every = 2;
    options.eval_every = 3;
  }

  // Trains `epochs` epochs of four batches (two optimizer steps each) or `total_steps` steps;
  // `stop_at` (epoch, batch) asks for a stop there, `stop_early_at` makes the evaluation at that
  // step end the run.
  void train(int64_t epochs, int64_t total_steps, std::pair<int64_t, int64_t> stop_at = {-1, -1},
             int64_t stop_early_at = -1) {
    torch::manual_seed(0);
    TrainingEngineOptions engine_options;
    engine_options.lr = 0.1;
    engine_options.total_steps = total_steps;
    engine_options.gradient_accumulation = options.gradient_accumulation;
    engine_options.checkpoint_dir = testing::fresh_dir("fine_tuning_loop");
    TrainingEngine engine(*layer, engine_options);
    detail::FineTuningSteps steps;
    steps.begin_epoch = [&](int64_t epoch) {
      epochs_begun.push_back(epoch);
      return int64_t{4};
    };
    steps.train_batch = [&](int64_t epoch, int64_t b, std::vector<double>& step_loss) {
      batches.emplace_back(epoch, b);
      const torch::Tensor x = torch::full({1, 3}, static_cast<float>(b + 1) / 4);
      const torch::Tensor loss = layer(x).square().mean();
      engine.backward(loss);
      step_loss[0] += loss.item<double>();
      if (std::make_pair(epoch, b) == stop_at) stop_requested() = true;
      return int64_t{1};
    };
    steps.evaluate = [&](int64_t) {
      evaluated.push_back(engine.state().global_step);
      return engine.state().global_step == stop_early_at;
    };
    steps.save_checkpoint = [&] { checkpointed.push_back(engine.state().global_step); };
    steps.stepped = [&](const std::vector<double>& step_loss) { stepped.push_back(step_loss[0]); };
    steps.log = [&](nlohmann::ordered_json& event) { logged.push_back(event); };
    detail::Progress progress(false);
    detail::run_fine_tuning_loop(engine, options, nullptr, epochs, total_steps, 1, steps, progress,
                                 result);
  }
};

TEST(FineTuningLoop, StepsLogsEvaluatesAndCheckpointsWhereTheOptionsSay) {
  LoopRecord run;
  run.train(/*epochs=*/2, /*total_steps=*/4);
  EXPECT_EQ(run.epochs_begun, (std::vector<int64_t>{0, 1}));
  ASSERT_EQ(run.batches.size(), 8u);
  EXPECT_EQ(run.batches[5], std::make_pair(int64_t{1}, int64_t{1}));
  EXPECT_EQ(run.result.steps, 4);
  EXPECT_FALSE(run.result.early_stopped);
  EXPECT_FALSE(run.result.interrupted);
  // eval_every 3, and each epoch's end (step 2, and step 4: the run's last) unless just done.
  EXPECT_EQ(run.evaluated, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(run.checkpointed, (std::vector<int64_t>{2, 3, 4}));
  // log_every 2: each event's loss is its window's mean over batches (a step's loss sums its
  // two accumulated batches').
  ASSERT_EQ(run.stepped.size(), 4u);
  ASSERT_EQ(run.logged.size(), 2u);
  EXPECT_EQ(run.logged[0].at("step"), 2);
  EXPECT_EQ(run.logged[1].at("step"), 4);
  EXPECT_EQ(run.logged[1].at("epoch"), 2);
  EXPECT_DOUBLE_EQ(run.logged[0].at("loss").get<double>(), (run.stepped[0] + run.stepped[1]) / 4);
  EXPECT_DOUBLE_EQ(run.logged[1].at("loss").get<double>(), (run.stepped[2] + run.stepped[3]) / 4);
}

TEST(FineTuningLoop, MaxStepsEndsInsideAnEpochAndNothingIsEvaluatedTwice) {
  LoopRecord run;
  run.options.eval_every = 2;
  run.train(/*epochs=*/2, /*total_steps=*/3);
  EXPECT_EQ(run.batches.size(), 6u);
  EXPECT_EQ(run.result.steps, 3);
  // Step 2 is evaluated once (eval_every), though the epoch ends there; its checkpoints are the
  // evaluation's and the epoch's. Step 3 ends the run inside the second epoch.
  EXPECT_EQ(run.evaluated, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(run.checkpointed, (std::vector<int64_t>{2, 2, 3}));
}

TEST(FineTuningLoop, EarlyStoppingEndsTheRunAtThatEvaluation) {
  LoopRecord run;
  run.train(/*epochs=*/3, /*total_steps=*/6, {-1, -1}, /*stop_early_at=*/3);
  EXPECT_TRUE(run.result.early_stopped);
  EXPECT_EQ(run.result.steps, 3);
  EXPECT_EQ(run.batches.size(), 6u);
  EXPECT_EQ(run.evaluated, (std::vector<int64_t>{2, 3}));
  // The epoch's end still checkpoints where the run stopped.
  EXPECT_EQ(run.checkpointed, (std::vector<int64_t>{2, 3}));
}

TEST(FineTuningLoop, AStopAskedForEndsTheRunAfterThatStepWithACheckpoint) {
  LoopRecord run;
  run.options.eval_every = 0;
  run.train(/*epochs=*/2, /*total_steps=*/4, /*stop_at=*/{1, 0});
  EXPECT_TRUE(run.result.interrupted);
  // The stop was asked for in the first batch of step 3's pair: that step finishes.
  EXPECT_EQ(run.result.steps, 3);
  EXPECT_EQ(run.batches.size(), 6u);
  EXPECT_EQ(run.evaluated, (std::vector<int64_t>{2}));  // no evaluation at the stop
  EXPECT_EQ(run.checkpointed, (std::vector<int64_t>{2, 3}));
  stop_requested() = false;
}

}  // namespace
}  // namespace adaptertune
