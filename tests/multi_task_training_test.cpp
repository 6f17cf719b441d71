// Several tasks in one training run: interleaved batch by batch, each on its own adapter and
// head, exactly as if each trained alone when nothing else differs; resumable; refused when
// ill-posed.

#include <map>

#include <nlohmann/json.hpp>

#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/tasks/glue.h"
#include "adaptertune/text/wordpiece.h"
#include "adaptertune/training/interrupt.h"
#include "adaptertune/training/trainer.h"
#include "test_util.h"
#include "training_test_util.h"

namespace adaptertune {
namespace {

const std::string kData = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";

struct Data {
  WordPieceTokenizer tokenizer{kData + "/vocab/bert-base-uncased-vocab.txt"};
  EncodedDataset encode(const std::string& task, const std::string& split, size_t n) const {
    TextDataset data = read_glue(glue_task(task), kData + "/glue", split);
    data.examples.resize(n);
    return encode_examples(data, tokenizer, 32);
  }
  // A task of the run: `train_examples` to train on, 32 dev examples.
  TrainingTask task(const std::string& glue, const std::string& adapter,
                    size_t train_examples) const {
    return {glue_task(glue),
            encode(glue, "train", train_examples),
            encode(glue, "dev", 32),
            adapter,
            {}};
  }
};

HeadConfig head_for(const std::string& glue) {
  const GlueTaskInfo& task = glue_task(glue);
  return task.regression() ? HeadConfig::regression() : HeadConfig::classification(task.labels);
}

// A tiny base with one task per (adapter, GLUE task), each with its head; the same seed gives
// the same tensors whatever is trained afterwards.
BertForSequenceClassification model_with(
    const std::vector<std::pair<std::string, std::string>>& tasks, bool dropout = false) {
  torch::manual_seed(8);
  BertConfig config = dropout ? testing::tiny_config() : testing::tiny_config_without_dropout();
  config.vocab_size = 30522;
  BertForSequenceClassification model(config, HeadConfig::classification({"0", "1"}));
  for (const auto& [adapter, glue] : tasks) {
    model->add_task(adapter, AdapterConfig::houlsby(), head_for(glue));
  }
  return model;
}

TrainerOptions options_for(const std::string& name) {
  return testing::short_run_options("multitask_training_" + name);
}

std::map<std::string, torch::Tensor> tensors_of(BertForSequenceClassification& model,
                                                const std::optional<std::string>& task) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model->named_parameters()) {
    if (parameter_task(item.key()) == task) out[item.key()] = item.value().detach().clone();
  }
  return out;
}

std::vector<nlohmann::json> events(const std::string& run, const std::string& kind) {
  std::vector<nlohmann::json> out;
  std::istringstream lines(read_file(run + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    nlohmann::json event = nlohmann::json::parse(line);
    if (event["event"] == kind) out.push_back(event);
  }
  return out;
}

// With no dropout, a constant learning rate and one batch per step, a task trained together
// with others ends exactly where it ends trained alone: its batches come in its own data order,
// and AdamW, clipping and weight decay see only its gradients in its steps. The other task
// trains too, and the base is never written.
TEST(MultiTaskTraining, EachTaskLearnsAsItWouldAlone) {
  Data data;
  const std::vector<std::pair<std::string, std::string>> tasks = {{"sst2", "SST-2"},
                                                                  {"stsb", "STS-B"}};
  TrainerOptions o = options_for("alone");
  o.schedule = ScheduleKind::kConstant;
  o.warmup_ratio = 0;
  o.weight_decay = 0.1;

  auto alone = model_with(tasks);
  const auto stsb_initial = tensors_of(alone, "stsb");
  Trainer(alone, {data.task("SST-2", "sst2", 64)}, FreezePolicy{}, o, data.tokenizer).train();

  auto together = model_with(tasks);
  const auto base = tensors_of(together, std::nullopt);
  o.output_dir = testing::fresh_dir("multitask_training_together");
  const TrainResult r =
      Trainer(together, {data.task("SST-2", "sst2", 64), data.task("STS-B", "stsb", 48)},
              FreezePolicy{}, o, data.tokenizer)
          .train();
  EXPECT_EQ(r.steps, 2 * (4 + 3));
  ASSERT_EQ(r.tasks.size(), 2u);
  EXPECT_EQ(r.tasks[0].batches, 8);  // two passes over 64 examples in batches of 16
  EXPECT_EQ(r.tasks[1].batches, 6);

  const auto sst2_alone = tensors_of(alone, "sst2");
  const auto sst2_together = tensors_of(together, "sst2");
  ASSERT_EQ(sst2_alone.size(), sst2_together.size());
  for (const auto& [name, value] : sst2_alone) {
    EXPECT_TRUE(torch::equal(value, sst2_together.at(name))) << name << " differs";
  }
  double moved = 0;
  const auto stsb_together = tensors_of(together, "stsb");
  for (const auto& [name, value] : stsb_initial) {
    moved = std::max(moved, testing::max_abs_diff(value, stsb_together.at(name)));
  }
  EXPECT_GT(moved, 1e-3) << "the second task did not train";
  for (const auto& [name, value] : tensors_of(alone, "stsb")) {
    EXPECT_TRUE(torch::equal(value, stsb_initial.at(name))) << name << " trained alone";
  }
  for (const auto& [name, value] : tensors_of(together, std::nullopt)) {
    EXPECT_TRUE(torch::equal(value, base.at(name))) << name << " (base) was written";
  }
}

// AdapterDrop's frozen-layer cache in a run of several tasks: each task's training rows and dev
// rows are kept apart, and with dropout off the run trains each task as it does without the
// cache, the second epoch and the second evaluation served from it.
TEST(MultiTaskTraining, FrozenLayerCacheTrainsEachTaskAsWithoutIt) {
  Data data;
  auto make = [] {
    auto model = testing::three_layer_classifier(testing::tiny_config_without_dropout(), 8);
    model->add_task("sst2", testing::adapter_above_two_layers(), head_for("SST-2"));
    model->add_task("stsb", testing::adapter_above_two_layers(), head_for("STS-B"));
    return model;
  };
  auto train = [&](BertForSequenceClassification& model, const std::string& name, bool cached) {
    TrainerOptions o = options_for(name);
    o.epochs = 2;
    o.cache_frozen_layers = cached;
    return Trainer(model, {data.task("SST-2", "sst2", 64), data.task("STS-B", "stsb", 48)},
                   FreezePolicy{}, o, data.tokenizer)
        .train();
  };
  auto plain = make(), cached = make();
  const TrainResult without = train(plain, "cache_plain", false);
  const TrainResult with = train(cached, "cache_cached", true);
  EXPECT_EQ(with.cached_layers, 2);
  EXPECT_EQ(with.batches_from_cache, (4 + 3)) << "the second epoch's batches of both tasks";
  const int64_t eval_batch_size = options_for("x").eval_batch_size;
  EXPECT_EQ(with.eval_batches_from_cache, 2 * ((32 + eval_batch_size - 1) / eval_batch_size))
      << "the second evaluation's batches of both tasks";
  for (const char* task : {"sst2", "stsb"}) {
    const auto expected = tensors_of(plain, task);
    for (const auto& [name, value] : tensors_of(cached, task)) {
      EXPECT_LT(testing::max_abs_diff(value, expected.at(name)), 1e-4) << name;
    }
  }
  ASSERT_EQ(with.tasks.size(), 2u);
  for (size_t t = 0; t < 2; ++t) {
    EXPECT_EQ(with.tasks[t].best_step, without.tasks[t].best_step) << t;
  }
}

// Every evaluation measures every task on its own dev set; each task keeps its own best pack,
// which loads onto a fresh base and gives that task's predictions.
TEST(MultiTaskTraining, LogsEachTasksDevMetricsAndKeepsEachTasksBestPack) {
  Data data;
  auto model = model_with({{"sst2", "SST-2"}, {"rte", "RTE"}, {"stsb", "STS-B"}});
  TrainerOptions o = options_for("files");
  o.eval_every = 3;
  o.log_every = 2;
  const TrainResult r = Trainer(model,
                                {data.task("SST-2", "sst2", 64), data.task("RTE", "rte", 32),
                                 data.task("STS-B", "stsb", 32)},
                                FreezePolicy{}, o, data.tokenizer)
                            .train();
  EXPECT_EQ(r.steps, 16);  // rounds of 4 + 2 + 2 batches, two of them
  const auto evals = events(o.output_dir, "eval");
  // Steps 3, 6, 8 (epoch end), 9, 12, 15, 16 (end): each evaluates all three tasks.
  ASSERT_EQ(evals.size(), 7u * 3);
  for (size_t i = 0; i < evals.size(); ++i) {
    EXPECT_EQ(evals[i]["task"], (std::vector<std::string>{"SST-2", "RTE", "STS-B"}[i % 3]));
    EXPECT_EQ(evals[i]["step"], evals[i - i % 3]["step"]);
  }
  EXPECT_TRUE(evals[2]["metrics"].contains("spearmanr"));
  const auto trains = events(o.output_dir, "train");
  ASSERT_FALSE(trains.empty());
  EXPECT_TRUE(trains[0].contains("task_loss"));

  const nlohmann::json results = nlohmann::json::parse(read_file(o.output_dir + "/results.json"));
  EXPECT_EQ(results["task"], "SST-2,RTE,STS-B");
  ASSERT_EQ(results["tasks"].size(), 3u);
  const nlohmann::json run = nlohmann::json::parse(read_file(o.output_dir + "/run.json"));
  EXPECT_EQ(run["tasks"][1]["batches_per_round"], 2);
  EXPECT_EQ(run["options"]["sampling_temperature"], 1.0);

  for (const TaskTrainResult& task : r.tasks) {
    ASSERT_TRUE(task.best_model) << task.task;
    EXPECT_EQ(*task.best_model, o.output_dir + "/best/" + *task.adapter);
    EXPECT_GE(task.best_step, 3);
    // The best pack's evaluation is the one logged at its best step.
    auto fresh = model_with({});
    const AdapterPackLoad load = load_adapter_pack(fresh, *task.best_model);
    EXPECT_EQ(load.adapter_name, *task.adapter);
    const EvalResult again =
        evaluate(fresh, glue_task(task.task), data.encode(task.task, "dev", 32), o.eval_batch_size,
                 torch::kCPU, Precision::kFloat32, data.tokenizer.pad_id());
    const std::string main = glue_task(task.task).main_metric;
    EXPECT_NEAR(again.metrics.at(main), task.best_metrics.at(main), 1e-9) << task.task;
  }
}

// Interrupted mid-round and resumed, a run of several tasks ends bit for bit where the
// uninterrupted run ends (dropout on: the RNG state comes back too).
TEST(MultiTaskTraining, ResumeMidRoundContinuesExactly) {
  Data data;
  const std::vector<std::pair<std::string, std::string>> tasks = {{"sst2", "SST-2"},
                                                                  {"mrpc", "MRPC"}};
  auto run = [&](const std::string& name, BertForSequenceClassification& model,
                 std::function<void(int64_t)> on_step, bool resume) {
    TrainerOptions o = options_for(name);
    if (resume)
      o.output_dir =
          ::testing::TempDir() + "adaptertune_multitask_training_cut_" + std::to_string(::getpid());
    o.resume = resume;
    o.sampling_temperature = 2;
    o.on_step = std::move(on_step);
    return Trainer(model, {data.task("SST-2", "sst2", 64), data.task("MRPC", "mrpc", 32)},
                   FreezePolicy{}, o, data.tokenizer)
        .train();
  };
  auto whole = model_with(tasks, /*dropout=*/true);
  run("whole", whole, nullptr, false);

  auto cut = model_with(tasks, /*dropout=*/true);
  const TrainResult first = run(
      "cut", cut,
      [](int64_t step) {
        if (step == 4) stop_requested() = true;
      },
      false);
  EXPECT_TRUE(first.interrupted);
  auto resumed = model_with(tasks, /*dropout=*/true);
  const TrainResult second = run("cut", resumed, nullptr, true);
  EXPECT_FALSE(second.interrupted);
  for (const char* task : {"sst2", "mrpc"}) {
    const auto a = tensors_of(whole, std::string(task));
    const auto b = tensors_of(resumed, std::string(task));
    for (const auto& [name, value] : a) {
      EXPECT_TRUE(torch::equal(value, b.at(name))) << name << " differs after the resume";
    }
  }
  // Another sampling is other batches: the checkpoint refuses it.
  auto other = model_with(tasks, true);
  TrainerOptions o = options_for("unused");
  o.output_dir =
      ::testing::TempDir() + "adaptertune_multitask_training_cut_" + std::to_string(::getpid());
  o.resume = true;
  o.max_steps = 100;
  EXPECT_ERROR_CONTAINS(
      Trainer(other, {data.task("SST-2", "sst2", 64), data.task("MRPC", "mrpc", 32)},
              FreezePolicy{}, o, data.tokenizer)
          .train(),
      "the checkpoint was made with sampling_temperature 2.0, this run has 1.0");
}

TEST(MultiTaskTraining, RefusesRunsThatCannotWork) {
  Data data;
  auto model = model_with({{"sst2", "SST-2"}, {"stsb", "STS-B"}});
  model->bert->add_adapter("bare", AdapterConfig::houlsby());  // no head: the model's 2 labels
  const TrainerOptions o = options_for("refused");
  auto train = [&](std::vector<TrainingTask> tasks, FreezePolicy policy = {}) {
    Trainer(model, std::move(tasks), policy, o, data.tokenizer);
  };
  EXPECT_ERROR_CONTAINS(train({}), "Trainer: no task to train");
  EXPECT_ERROR_CONTAINS(train({data.task("SST-2", "sst2", 16), data.task("RTE", "sst2", 16)}),
                        "task RTE (sst2): adapter \"sst2\" already trains another task of the run");
  TrainingTask plain = data.task("RTE", "sst2", 16);
  plain.adapter.reset();
  EXPECT_ERROR_CONTAINS(train({data.task("SST-2", "sst2", 16), plain}),
                        "task RTE: a run of several tasks trains each on its own adapter");
  EXPECT_ERROR_CONTAINS(train({data.task("SST-2", "sst2", 16), data.task("STS-B", "bare", 16)}),
                        "task STS-B (bare) needs a regression head, the task would train a head "
                        "of 2 labels");
  EXPECT_ERROR_CONTAINS(train({data.task("SST-2", "stsb", 16)}),
                        "task SST-2 (stsb) needs a head of 2 labels, the task would train a "
                        "regression head");
  EXPECT_ERROR_CONTAINS(train({data.task("SST-2", "sst2", 16), data.task("MRPC", "nope", 16)}),
                        "no adapter named \"nope\"");
  EXPECT_ERROR_CONTAINS(train({data.task("SST-2", "sst2", 16), data.task("STS-B", "stsb", 16)},
                              FreezePolicy::from_name("full")),
                        "training mode \"full\" with adapter");
  TrainerOptions cold = o;
  cold.sampling_temperature = 0;
  EXPECT_ERROR_CONTAINS(
      Trainer(model, {data.task("SST-2", "sst2", 16)}, FreezePolicy{}, cold, data.tokenizer),
      "sampling_temperature");
}

}  // namespace
}  // namespace adaptertune
