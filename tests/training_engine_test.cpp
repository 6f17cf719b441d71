#include "adaptertune/training/training_engine.h"

#include <torch/torch.h>

#include <limits>
#include <map>

#include "adaptertune/adapter_config.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/head_config.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/layers/attention.h"
#include "adaptertune/layers/linear.h"
#include "adaptertune/training/freeze_policy.h"
#include "onednn_products.h"
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

// A checkpoint records the schedule, and resume_from() continues another run's checkpoint while
// this run's own checkpoints go to its own directory.
TEST(TrainingEngine, ResumesFromAnotherRunsCheckpointAndRecordsTheSchedule) {
  const std::string dir = testing::fresh_dir("engine_resume_from");
  torch::manual_seed(0);
  Toy toy;
  TrainingEngineOptions options = engine_options(dir + "/long");
  options.schedule = ScheduleKind::kWarmupStableDecay;
  options.warmup_steps = 1;
  options.decay_steps = 2;
  TrainingEngine engine(*toy.layer, options);
  engine.backward(toy.loss(0, 4));
  engine.step();
  engine.state().batch_in_epoch = 1;
  const std::string saved = engine.save_checkpoint(R"({"examples": 4})");
  const TrainingState state = CheckpointManager::read_state(saved);
  EXPECT_EQ(LrSchedule::from_json(state.scheduler_json, "x").describe(),
            "wsd, peak 0.1, warmup 1, decay 2 of 10 steps");

  Toy other;
  options.checkpoint_dir = dir + "/branch";
  TrainingEngine branch(*other.layer, options);
  DataShape shape;
  shape.batches_per_epoch = 1;
  shape.data_seed = 42;
  EXPECT_ERROR_CONTAINS(branch.resume_from(dir + "/long", shape, R"({"examples": 4})"),
                        dir + "/long: not a complete checkpoint (no trainer_state.json)");
  EXPECT_ERROR_CONTAINS(branch.resume_from(saved, shape, R"({"examples": 5})"),
                        "made with examples 4, this run has 5");
  branch.resume_from(saved, shape, R"({"examples": 4})");
  EXPECT_EQ(branch.state().global_step, 1);
  EXPECT_TRUE(torch::equal(other.layer->weight, toy.layer->weight));
  EXPECT_FALSE(branch.resume(shape, R"({"examples": 4})")) << "its own directory is empty";
  EXPECT_EQ(branch.save_checkpoint(R"({"examples": 4})"), dir + "/branch/checkpoint-1");
}

TEST(TrainingEngine, AStepThatLossScalingDropsLeavesTheScheduleWhereItWas) {
  Toy toy;
  TrainingEngineOptions options = engine_options(testing::fresh_dir("engine_skip_schedule"));
  options.loss_scaling = LossScaling::kOn;
  options.initial_loss_scale = 4;
  TrainingEngine engine(*toy.layer, options);
  const LrSchedule& schedule = engine.schedule();
  ASSERT_NE(schedule.lr_at(1), schedule.lr_at(2)) << "a schedule that moves every step";
  engine.backward(toy.loss(0, 4));
  EXPECT_DOUBLE_EQ(engine.step(), schedule.lr_at(0));
  engine.backward(toy.loss(0, 4));
  toy.layer->weight.mutable_grad()[0][0] = std::numeric_limits<float>::infinity();
  engine.step();  // dropped: no update, so the scheduler does not move either
  EXPECT_EQ(engine.state().skipped_steps, 1);
  EXPECT_DOUBLE_EQ(engine.optimizer().lr(), schedule.lr_at(0));
  // The third step is the schedule's second update, as Hugging Face's Trainer gives it.
  engine.backward(toy.loss(0, 4));
  EXPECT_DOUBLE_EQ(engine.step(), schedule.lr_at(1));
  EXPECT_DOUBLE_EQ(engine.optimizer().lr(), schedule.lr_at(1));
  EXPECT_EQ(engine.state().global_step, 3);
  EXPECT_EQ(engine.state().schedule_step(), 2);
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

TEST(TrainingEngine, AnOverflowSkipsTheStepHalvesTheLossScaleAndCheckpointsKeepIt) {
  const std::string dir = testing::fresh_dir("engine_loss_scale");
  torch::manual_seed(0);
  Toy toy;
  TrainingEngineOptions options = engine_options(dir + "/run");
  options.loss_scaling = LossScaling::kOn;
  options.initial_loss_scale = 4;
  options.loss_scale_growth_interval = 2;
  TrainingEngine engine(*toy.layer, options);
  EXPECT_EQ(engine.loss_scale(), 4);
  // The loss is scaled for backward(), and step() takes the scale out again.
  engine.backward(toy.loss(0, 4));
  const torch::Tensor scaled_grad = toy.layer->weight.grad().clone();
  Toy plain;
  {
    torch::NoGradGuard no_grad;
    plain.layer->weight.copy_(toy.layer->weight);
    plain.layer->bias.copy_(toy.layer->bias);
  }
  plain.loss(0, 4).backward();
  EXPECT_TRUE(torch::equal(scaled_grad, plain.layer->weight.grad() * 4));

  // An infinite gradient: nothing moves, the scale halves, the step still counts.
  toy.layer->weight.mutable_grad()[0][1] = std::numeric_limits<float>::infinity();
  const torch::Tensor before = toy.layer->weight.clone();
  engine.step();
  EXPECT_TRUE(torch::equal(toy.layer->weight, before));
  EXPECT_FALSE(toy.layer->weight.grad().defined()) << "the dropped gradients are cleared";
  EXPECT_EQ(engine.loss_scale(), 2);
  EXPECT_EQ(engine.state().skipped_steps, 1);
  EXPECT_EQ(engine.state().global_step, 1);
  // Two steps without one: a step moves the weight, and the second doubles the scale.
  for (int step = 0; step < 2; ++step) {
    engine.backward(toy.loss(0, 4));
    engine.step();
  }
  EXPECT_FALSE(torch::equal(toy.layer->weight, before));
  EXPECT_EQ(engine.loss_scale(), 4);
  EXPECT_EQ(engine.state().loss_scale_growth_tracker, 0);
  engine.backward(toy.loss(0, 4));
  engine.step();
  EXPECT_EQ(engine.state().loss_scale_growth_tracker, 1);
  engine.state().batch_in_epoch = 4;
  const std::string saved = engine.save_checkpoint(R"({"examples": 4})");

  // A resume picks the scale up where the run left it; a run without scaling leaves it.
  DataShape shape;
  shape.batches_per_epoch = 4;
  shape.data_seed = 42;
  Toy other;
  TrainingEngine resumed(*other.layer, options);
  resumed.resume(shape, R"({"examples": 4})");
  EXPECT_EQ(resumed.loss_scale(), 4);
  EXPECT_EQ(resumed.state().loss_scale_growth_tracker, 1);
  EXPECT_EQ(resumed.state().skipped_steps, 1);
  TrainingEngineOptions unscaled = engine_options(dir + "/run");
  TrainingEngine without(*other.layer, unscaled);
  EXPECT_EQ(without.loss_scale(), 0) << "fp32: LossScaling::kAuto scales nothing";
  without.resume(shape, R"({"examples": 4})");
  EXPECT_EQ(without.loss_scale(), 0);

  // A scale that is not a power of two is refused where it is read.
  const std::string state_path = saved + "/trainer_state.json";
  std::string text = read_file(state_path);
  const size_t at = text.find("\"scale\": 4.0");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 12, "\"scale\": 3.0");
  write_file_atomic(state_path, text);
  EXPECT_ERROR_CONTAINS(resumed.resume(shape, R"({"examples": 4})"), "(loss_scaling): key 'scale'");

  // Gradients that stay infinite down to a scale of 1: an error that says so.
  for (int step = 0; step < 2; ++step) {
    engine.backward(toy.loss(0, 4));
    toy.layer->bias.mutable_grad()[0] = std::numeric_limits<float>::quiet_NaN();
    engine.step();
  }
  EXPECT_EQ(engine.loss_scale(), 1);
  engine.backward(toy.loss(0, 4));
  toy.layer->bias.mutable_grad()[0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ERROR_CONTAINS(engine.step(), "not finite even with the loss scaled by 1");

  options.initial_loss_scale = 3;
  EXPECT_ERROR_CONTAINS(TrainingEngine(*toy.layer, options), "initial_loss_scale is 3");
  options.initial_loss_scale = 0.5;
  EXPECT_ERROR_CONTAINS(TrainingEngine(*toy.layer, options), "a power of two >= 1");
  options.initial_loss_scale = 1;
  options.loss_scale_growth_interval = 0;
  EXPECT_ERROR_CONTAINS(TrainingEngine(*toy.layer, options), "loss_scale_growth_interval");
}

// Frozen Linear weights in the compute dtype (FrozenLinearWeightsInDtype, which the engine keeps).

class FrozenWeightsTest : public testing::DeviceTest {
 protected:
  // A tiny classifier readied to train a Houlsby adapter. With `bf16_base`, its base holds bf16
  // values, as one loaded from bf16 files (the shipped base) does.
  BertForSequenceClassification adapter_model(bool bf16_base) {
    torch::manual_seed(7);
    BertForSequenceClassification model(testing::tiny_config_without_dropout(), HeadConfig{});
    if (bf16_base) {
      torch::NoGradGuard no_grad;
      for (auto& parameter : model->parameters()) parameter.copy_(parameter.to(torch::kBFloat16));
    }
    model->bert->add_adapter("task", AdapterConfig::houlsby());
    testing::randomize_task_tensors(*model);
    model->to(device());
    prepare_task_training(*model, "task", FreezePolicy{});
    return model;
  }

  TrainingEngineOptions bf16_options(const std::string& dir) {
    TrainingEngineOptions options;
    options.lr = 1e-2;
    options.total_steps = 3;
    options.precision = Precision::kBFloat16;
    options.device = device();
    options.checkpoint_dir = dir;
    return options;
  }

  // Three optimizer steps on one fixed batch, as the trainer runs them.
  void train(BertForSequenceClassification& model, TrainingEngine& engine) {
    const torch::Tensor input = testing::random_ids(4, 8).to(device());
    const torch::Tensor mask = torch::ones({4, 8}, torch::kLong).to(device());
    const torch::Tensor labels = torch::tensor({0, 1, 1, 0}, torch::kLong).to(device());
    for (int step = 0; step < 3; ++step) {
      torch::Tensor loss;
      {
        const AutocastGuard autocast = engine.autocast();
        loss = model->loss(model(input, mask), labels);
      }
      engine.backward(loss);
      engine.step();
    }
  }
};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(FrozenWeightsTest);

// Whether `name` is a frozen Linear weight of `model`'s (not an embedding table).
bool frozen_linear_weight(const std::string& name, const torch::Tensor& value) {
  return !value.requires_grad() && value.dim() == 2 && name.find("embeddings") == std::string::npos;
}

int64_t frozen_linear_weights(torch::nn::Module& model) {
  int64_t count = 0;
  for (const auto& item : model.named_parameters()) {
    count += frozen_linear_weight(item.key(), item.value()) ? 1 : 0;
  }
  return count;
}

// Each parameter's dtype, by name.
std::map<std::string, torch::ScalarType> dtypes(torch::nn::Module& model) {
  std::map<std::string, torch::ScalarType> out;
  for (const auto& item : model.named_parameters()) out[item.key()] = item.value().scalar_type();
  return out;
}

TEST_P(FrozenWeightsTest, EngineTrainsTheSameWithFrozenWeightsInBf16AndGivesThemBack) {
  BertForSequenceClassification stored = adapter_model(/*bf16_base=*/true);
  BertForSequenceClassification cast = adapter_model(/*bf16_base=*/true);
  std::map<std::string, torch::Tensor> frozen_before;
  for (const auto& item : stored->named_parameters()) {
    if (!item.value().requires_grad()) frozen_before[item.key()] = item.value().detach().clone();
  }
  const std::string dir = testing::fresh_dir("engine_frozen_weights");
  {
    TrainingEngine with(*stored, bf16_options(dir + "/with"));
    TrainingEngineOptions off = bf16_options(dir + "/without");
    off.frozen_weights_in_compute_dtype = false;
    TrainingEngine without(*cast, off);
    // Inside the engine's lifetime: every frozen Linear weight of the base in bf16, nothing else.
    for (const auto& item : stored->named_parameters()) {
      EXPECT_EQ(item.value().scalar_type(),
                frozen_linear_weight(item.key(), item.value()) ? torch::kBFloat16 : torch::kFloat32)
          << item.key();
    }
    EXPECT_GE(frozen_linear_weights(*stored), 3 * 6) << "at least six Linears a layer";
    for (const auto& [name, dtype] : dtypes(*cast)) EXPECT_EQ(dtype, torch::kFloat32) << name;

    // And the frozen attention projections packed, in both (FrozenProjectionsPacked).
    for (size_t layer = 0; layer < stored->bert->encoder->size(); ++layer) {
      EXPECT_TRUE(stored->bert->encoder->at(layer)->attention->self->packed()) << layer;
      EXPECT_TRUE(cast->bert->encoder->at(layer)->attention->self->packed()) << layer;
    }

    train(stored, with);
    train(cast, without);
    // The stored weights' forward products read prepacked copies (FrozenLinearWeightsPrepacked)
    // where bfloat16 products run on oneDNN; the float32 ones are not covered. The comparison
    // below holds those runs to the same bits.
    const torch::Tensor probe = torch::ones({2, 2}, torch::kBFloat16);
    if (device().is_cpu() && onednn_linear_applies(probe, probe, torch::Tensor())) {
      EXPECT_GE(FrozenLinearWeightsPrepacked::copies(),
                4 * static_cast<int64_t>(stored->bert->encoder->size()))
          << "a layer's query, key and value as one block, its attention output, and the two "
             "feed-forward weights";
    } else {
      EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 0);
    }
    // Autocast rounds a float32 weight to bf16 as storing it did: the same bits throughout.
    auto trained = cast->named_parameters();
    int64_t compared = 0;
    for (const auto& item : stored->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      EXPECT_TRUE(torch::equal(item.value(), trained[item.key()])) << item.key();
      ++compared;
    }
    EXPECT_GT(compared, 0);
  }
  EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 0);
  {
    TrainingEngineOptions unpacked = bf16_options(dir + "/unpacked");
    unpacked.prepack_frozen_weights = false;
    TrainingEngine engine(*stored, unpacked);
    train(stored, engine);
    EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 0) << "prepack_frozen_weights off";
  }
  // The engines are gone: float32 again, with the very values they had, unpacked.
  for (const auto& [name, dtype] : dtypes(*stored)) EXPECT_EQ(dtype, torch::kFloat32) << name;
  EXPECT_FALSE(stored->bert->encoder->at(0)->attention->self->packed());
  EXPECT_FALSE(cast->bert->encoder->at(0)->attention->self->packed());
  auto after = stored->named_parameters();
  for (const auto& [name, value] : frozen_before) {
    EXPECT_TRUE(torch::equal(after[name], value)) << name;
  }
}

TEST_P(FrozenWeightsTest, WeightsThatBf16WouldRoundStayFloat32) {
  BertForSequenceClassification model = adapter_model(/*bf16_base=*/false);
  FrozenLinearWeightsInDtype frozen(*model, Precision::kBFloat16);
  EXPECT_EQ(frozen.stored(), 0);
  EXPECT_EQ(frozen.kept_in_float32(), frozen_linear_weights(*model));
  EXPECT_GE(frozen.kept_in_float32(), 3 * 6);
  for (const auto& [name, dtype] : dtypes(*model)) EXPECT_EQ(dtype, torch::kFloat32) << name;
}

// Loss scaling on the model the trainer trains, on every device.
class LossScalingTest : public FrozenWeightsTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(LossScalingTest);

TEST_P(LossScalingTest, ScaledTrainingIsUnscaledTrainingWhereNothingOverflows) {
  const std::string dir = testing::fresh_dir("engine_scaled");
  for (const Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    SCOPED_TRACE(precision_name(precision));
    BertForSequenceClassification scaled = adapter_model(/*bf16_base=*/true);
    BertForSequenceClassification plain = adapter_model(/*bf16_base=*/true);
    TrainingEngineOptions options = bf16_options(dir + "/plain");
    options.precision = precision;
    TrainingEngine plain_engine(*plain, options);
    EXPECT_EQ(plain_engine.loss_scale(), 0) << "LossScaling::kAuto: fp16 only";
    train(plain, plain_engine);
    options.checkpoint_dir = dir + "/scaled";
    options.loss_scaling = LossScaling::kOn;
    options.loss_scale_growth_interval = 2;
    TrainingEngine scaled_engine(*scaled, options);
    train(scaled, scaled_engine);
    EXPECT_EQ(scaled_engine.loss_scale(), 65536.0 * 2) << "grown once in three steps";
    EXPECT_EQ(scaled_engine.state().skipped_steps, 0);
    auto expected = plain->named_parameters();
    for (const auto& item : scaled->named_parameters()) {
      if (!item.value().requires_grad()) continue;
      EXPECT_TRUE(testing::same_weights_on(device(), item.value(), expected[item.key()]))
          << item.key();
    }
  }
}

TEST_P(LossScalingTest, Fp16TrainsWithItsLossScaledOnCuda) {
  if (device().is_cpu()) GTEST_SKIP() << "LibTorch's CPU autocast has no fp16";
  BertForSequenceClassification fp16 = adapter_model(/*bf16_base=*/true);
  BertForSequenceClassification fp32 = adapter_model(/*bf16_base=*/true);
  // The trainable tensors as one vector.
  const auto trainable_vector = [](torch::nn::Module& model) {
    std::vector<torch::Tensor> parts;
    for (const auto& parameter : model.parameters()) {
      if (parameter.requires_grad()) parts.push_back(parameter.detach().flatten().cpu());
    }
    return torch::cat(parts).to(torch::kDouble);
  };
  const torch::Tensor start = trainable_vector(*fp32);
  TrainingEngineOptions options = bf16_options(testing::fresh_dir("engine_fp16"));
  options.precision = Precision::kFloat16;
  TrainingEngine fp16_engine(*fp16, options);
  EXPECT_EQ(fp16_engine.loss_scale(), 65536.0);
  train(fp16, fp16_engine);
  EXPECT_EQ(fp16_engine.state().skipped_steps, 0);
  options.precision = Precision::kFloat32;
  options.checkpoint_dir += "_fp32";
  TrainingEngine fp32_engine(*fp32, options);
  train(fp32, fp32_engine);
  // AdamW moves every weight by about the learning rate whatever its gradient's size, so a
  // gradient near 0 may move its weight the other way in fp16: the updates agree as a whole.
  const torch::Tensor fp16_update = trainable_vector(*fp16) - start;
  const torch::Tensor fp32_update = trainable_vector(*fp32) - start;
  EXPECT_TRUE(fp16_update.isfinite().all().item<bool>());
  const double cosine =
      (fp16_update.dot(fp32_update) / (fp16_update.norm() * fp32_update.norm())).item<double>();
  EXPECT_GT(cosine, 0.9) << "fp16's updates against fp32's";
}

TEST(FrozenLinearWeightsInDtype, LeavesTiedTrainableAndReplacedWeightsAlone) {
  // A frozen Linear whose weight is registered a second time (tied), a frozen one and a
  // trainable one, all holding bf16 values.
  struct Model : torch::nn::Module {
    torch::nn::Linear tied{register_module("tied", torch::nn::Linear(4, 4))};
    torch::nn::Linear frozen{register_module("frozen", torch::nn::Linear(4, 4))};
    torch::nn::Linear trainable{register_module("trainable", torch::nn::Linear(4, 4))};
    Model() { register_parameter("shared", tied->weight, /*requires_grad=*/false); }
  } model;
  {
    torch::NoGradGuard no_grad;
    for (auto& parameter : model.parameters()) parameter.copy_(parameter.to(torch::kBFloat16));
  }
  model.frozen->weight.set_requires_grad(false);
  EXPECT_EQ(FrozenLinearWeightsInDtype(model, Precision::kFloat32).stored(), 0);
  {
    FrozenLinearWeightsInDtype stored(model, Precision::kBFloat16);
    EXPECT_EQ(stored.stored(), 1);
    EXPECT_EQ(stored.kept_in_float32(), 0);
    EXPECT_EQ(model.frozen->weight.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(model.tied->weight.scalar_type(), torch::kFloat32) << "tied: left alone";
    EXPECT_EQ(model.trainable->weight.scalar_type(), torch::kFloat32) << "trainable";
    stored.restore();
    EXPECT_EQ(model.frozen->weight.scalar_type(), torch::kFloat32);
    stored.restore();  // idempotent
  }
  {
    // New data given meanwhile (a load, Module::to()) is not overwritten by the restore.
    FrozenLinearWeightsInDtype stored(model, Precision::kBFloat16);
    torch::NoGradGuard no_grad;
    model.frozen->weight.set_data(torch::full({4, 4}, 0.25, torch::kDouble));
  }
  EXPECT_EQ(model.frozen->weight.scalar_type(), torch::kDouble);
}

}  // namespace
}  // namespace adaptertune
