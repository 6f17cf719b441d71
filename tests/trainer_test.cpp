#include "adaptertune/training/trainer.h"

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/inference/predictor.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/directory_lock.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/parameter_names.h"
#include "adaptertune/tasks/glue.h"
#include "adaptertune/text/wordpiece.h"
#include "test_util.h"
#include "training/cached_evaluation.h"
#include "training/frozen_layer_cache.h"
#include "training_test_util.h"

namespace adaptertune {
namespace {

const std::string kData = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";

struct Fixture {
  WordPieceTokenizer tokenizer{kData + "/vocab/bert-base-uncased-vocab.txt"};
  const GlueTaskInfo& task = glue_task("SST-2");
  EncodedDataset train, dev;
  Fixture() {
    TextDataset t = read_glue(task, kData + "/glue", "train");
    t.examples.resize(96);
    TextDataset d = read_glue(task, kData + "/glue", "dev");
    d.examples.resize(64);
    train = encode_examples(t, tokenizer, 32);
    dev = encode_examples(d, tokenizer, 32);
  }
};

BertForSequenceClassification make_model() {
  torch::manual_seed(3);
  BertConfig config = testing::tiny_config();
  config.vocab_size = 30522;
  BertForSequenceClassification model(config, HeadConfig::classification({"0", "1"}));
  model->bert->add_adapter("sst2", AdapterConfig::houlsby());
  return model;
}

TrainerOptions options_for(const std::string& name) {
  return testing::short_run_options("trainer_" + name);
}

std::map<std::string, torch::Tensor> snapshot(BertForSequenceClassification& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model->named_parameters())
    out[item.key()] = item.value().detach().clone();
  return out;
}

class EvaluateTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(EvaluateTest);

TEST_P(EvaluateTest, RunsAModelLoadedOnTheCpuOnTheDeviceItIsGiven) {
  // As `adaptertune eval` calls it: a model loaded on the CPU, the device from --device.
  Fixture f;
  auto on_cpu = make_model();
  const EvalResult reference =
      evaluate(on_cpu, f.task, f.dev, 32, torch::kCPU, Precision::kFloat32, f.tokenizer.pad_id());
  auto model = make_model();
  const EvalResult got =
      evaluate(model, f.task, f.dev, 32, device(), Precision::kFloat32, f.tokenizer.pad_id());
  for (const auto& parameter : model->parameters()) {
    EXPECT_EQ(parameter.device(), device()) << "the model stays where it ran";
  }
  ASSERT_EQ(got.logits.size(), reference.logits.size());
  for (size_t i = 0; i < got.logits.size(); ++i) {
    for (size_t j = 0; j < got.logits[i].size(); ++j) {
      EXPECT_NEAR(got.logits[i][j], reference.logits[i][j], 1e-4) << i << ", " << j;
    }
  }
  EXPECT_DOUBLE_EQ(got.metrics.at("accuracy"), reference.metrics.at("accuracy"));
}

TEST(Trainer, EvaluateGivesEachExampleItsOwnLogitsWhateverItsBatch) {
  // evaluate() batches examples of similar length together; each example's logits still land in
  // its own row, equal to what the example gives alone.
  Fixture f;
  auto model = make_model();
  model->eval();
  const EvalResult got =
      evaluate(model, f.task, f.dev, 16, torch::kCPU, Precision::kFloat32, f.tokenizer.pad_id());
  ASSERT_EQ(got.logits.size(), f.dev.encodings.size());
  std::set<size_t> lengths;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < f.dev.encodings.size(); ++i) {
    const Encoding& e = f.dev.encodings[i];
    lengths.insert(e.input_ids.size());
    const torch::Tensor ids = torch::tensor(e.input_ids).unsqueeze(0);
    const torch::Tensor alone =
        model(ids, torch::ones_like(ids), torch::tensor(e.token_type_ids).unsqueeze(0)).reshape(-1);
    ASSERT_EQ(got.logits[i].size(), static_cast<size_t>(alone.numel()));
    for (int64_t j = 0; j < alone.numel(); ++j) {
      EXPECT_NEAR(got.logits[i][static_cast<size_t>(j)], alone[j].item<float>(), 1e-5)
          << "example " << i << " logit " << j;
    }
  }
  EXPECT_GT(lengths.size(), 5U) << "examples of many lengths, so batches and order differ";
}

TEST(Trainer, TrainsWritesRunFilesAndKeepsTheBestAdapterPack) {
  Fixture f;
  auto model = make_model();
  TrainerOptions o = options_for("files");
  o.eval_every = 4;
  Trainer trainer(model, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o,
                  f.tokenizer);
  TrainResult r = trainer.train();
  EXPECT_EQ(r.steps, 12);  // 96 / 16 = 6 steps per epoch, 2 epochs
  EXPECT_GE(r.best_step, 4);
  EXPECT_TRUE(r.best_metrics.count("accuracy"));
  for (const char* file : {"run.json", "metrics.jsonl", "results.json", "best/adapter_config.json",
                           "best/adapter.safetensors", "best/model_head.safetensors"}) {
    EXPECT_TRUE(file_exists(o.output_dir + "/" + file)) << file;
  }
  const std::string metrics = read_file(o.output_dir + "/metrics.jsonl");
  EXPECT_NE(metrics.find("\"event\":\"eval\""), std::string::npos);
  EXPECT_NE(read_file(o.output_dir + "/run.json").find("\"train_mode\": \"adapters\""),
            std::string::npos);
  const auto results = nlohmann::json::parse(read_file(o.output_dir + "/results.json"));
  EXPECT_EQ(results.at("steps"), 12);
  EXPECT_EQ(results.at("skipped_steps"), 0) << "fp32 scales no loss";
  // The pack reproduces the best dev score on a fresh copy of the base.
  auto fresh = make_model();
  fresh->bert->remove_adapter("sst2");
  load_adapter_pack(fresh, o.output_dir + "/best");
  EvalResult eval =
      evaluate(fresh, f.task, f.dev, 32, torch::kCPU, Precision::kFloat32, f.tokenizer.pad_id());
  EXPECT_DOUBLE_EQ(eval.metrics.at("accuracy"), r.best_metrics.at("accuracy"));
}

// On every device: CUDA's generators are seeded, saved and restored with the CPU's.
class TrainerOnDeviceTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(TrainerOnDeviceTest);

TEST_P(TrainerOnDeviceTest, SameSeedSameResultAndResumeIsExact) {
  Fixture f;
  const auto options_on_device = [this](const std::string& name) {
    TrainerOptions o = options_for(name);
    o.device = device();
    return o;
  };
  auto a = make_model();
  Trainer(a, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), options_on_device("a"),
          f.tokenizer)
      .train();
  auto b = make_model();
  // The global generators are elsewhere now: only a Trainer that seeds them itself gives b the
  // same dropout masks as a.
  torch::manual_seed(987654321);
  Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), options_on_device("b"),
          f.tokenizer)
      .train();
  auto expected = snapshot(a);
  for (const auto& [name, value] : snapshot(b)) {
    EXPECT_EQ(value.device(), device()) << name;
    EXPECT_TRUE(testing::same_weights_on(device(), value, expected[name])) << name;
  }

  // Interrupted after step 3 (as Ctrl-C does), then resumed in a new model and trainer.
  TrainerOptions o = options_on_device("resume");
  o.on_step = [](int64_t step) {
    if (step == 3) stop_requested() = true;
  };
  auto c = make_model();
  TrainResult first =
      Trainer(c, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train();
  EXPECT_TRUE(first.interrupted);
  EXPECT_EQ(first.steps, 3);
  o.on_step = nullptr;
  o.resume = true;
  auto d = make_model();
  TrainResult second =
      Trainer(d, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train();
  EXPECT_FALSE(second.interrupted);
  EXPECT_EQ(second.steps, 12);
  for (const auto& [name, value] : snapshot(d))
    EXPECT_TRUE(testing::same_weights_on(device(), value, expected[name])) << name;
}

TEST_P(TrainerOnDeviceTest, Fp16ScalesItsLossAndLogsTheScale) {
  if (device().is_cpu()) GTEST_SKIP() << "LibTorch's CPU autocast has no fp16";
  Fixture f;
  auto model = make_model();
  TrainerOptions o = options_for("fp16");
  o.device = device();
  o.precision = Precision::kFloat16;
  o.log_every = 1;
  const TrainResult result =
      Trainer(model, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train();
  EXPECT_EQ(result.steps, 12);
  const std::string text = read_file(o.output_dir + "/metrics.jsonl");
  int64_t train_events = 0;
  for (size_t start = 0; start < text.size();) {
    const size_t end = text.find('\n', start);
    const auto event = nlohmann::json::parse(text.substr(start, end - start));
    start = end + 1;
    if (event.at("event") != "train") continue;
    ++train_events;
    EXPECT_TRUE(std::isfinite(event.at("loss").get<double>())) << event.dump();
    EXPECT_GE(event.at("loss_scale").get<double>(), 1.0) << event.dump();
    EXPECT_LT(event.at("skipped_steps").get<int64_t>(), 12) << event.dump();
  }
  EXPECT_EQ(train_events, 12);
  const auto results = nlohmann::json::parse(read_file(o.output_dir + "/results.json"));
  EXPECT_EQ(results.at("skipped_steps"), result.skipped_steps);
  EXPECT_LT(result.skipped_steps, 12);
  for (const auto& [name, value] : snapshot(model))
    EXPECT_TRUE(value.isfinite().all().item<bool>()) << name;
}

// A run without an adapter keeps a model directory that works on its own: it carries the
// tokenizer, so `eval --model runs/x/best` needs nothing else.
TEST(Trainer, FullFineTuningKeepsAModelDirectoryWithItsTokenizer) {
  Fixture f;
  auto model = make_model();
  model->bert->remove_adapter("sst2");
  TrainerOptions o = options_for("full");
  o.epochs = 1;
  o.max_length = 32;
  TrainResult r = Trainer(model, f.task, f.train, f.dev, FreezePolicy::from_name("full"),
                          std::nullopt, o, f.tokenizer)
                      .train();
  ASSERT_TRUE(r.best_model.has_value());
  for (const char* file :
       {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}) {
    EXPECT_TRUE(file_exists(*r.best_model + "/" + file)) << file;
  }
  auto tokenizer = load_tokenizer(*r.best_model);
  EXPECT_TRUE(tokenizer->lowercase());
  EXPECT_EQ(tokenizer->encode("a gorgeous movie").input_ids,
            f.tokenizer.encode("a gorgeous movie").input_ids);
  auto reloaded = load_bert_for_sequence_classification(*r.best_model);
  EvalResult eval =
      evaluate(reloaded, f.task, f.dev, 32, torch::kCPU, Precision::kFloat32, tokenizer->pad_id());
  EXPECT_DOUBLE_EQ(eval.metrics.at("accuracy"), r.best_metrics.at("accuracy"));
  // It records how it ran, as a pack does: eval, predict and a Predictor default to that.
  const ModelDirectoryRecord record = read_model_directory_record(*r.best_model);
  EXPECT_EQ(record.max_length, 32);
  EXPECT_EQ(record.precision, Precision::kFloat32);
  EXPECT_FALSE(record.question_answering.has_value());
  EXPECT_EQ(Predictor(*r.best_model, {}).max_length(std::nullopt), 32);
}

// run.json names the base a run started from: its directory and the identity of its weights,
// which full fine-tuning changes, so a resumed run must take it before restoring the checkpoint.
TEST(Trainer, RunJsonNamesTheBaseItStartedFromAfterAResumeToo) {
  Fixture f;
  auto model = make_model();
  model->bert->remove_adapter("sst2");
  const std::string weights = base_weights_sha256(*model, false, /*pooler=*/true);
  const std::string config = base_config_sha256(model->bert->config());
  TrainerOptions o = options_for("base_record");
  o.base_model_dir = kData + "/../tests/..";  // the project's root, under a name to resolve
  o.on_step = [](int64_t step) {
    if (step == 2) stop_requested() = true;
  };
  const FreezePolicy full = FreezePolicy::from_name("full");
  Trainer(model, f.task, f.train, f.dev, full, std::nullopt, o, f.tokenizer).train();
  auto check = [&](const std::string& when) {
    const auto run = nlohmann::json::parse(read_file(o.output_dir + "/run.json"));
    const auto& base = run.at("base");
    char* real = ::realpath(o.base_model_dir.c_str(), nullptr);
    ASSERT_NE(real, nullptr);
    EXPECT_EQ(base.at("model_dir"), std::string(real)) << when;
    std::free(real);
    EXPECT_EQ(base.at("random_init"), false) << when;
    EXPECT_EQ(base.at("config_sha256"), config) << when;
    EXPECT_EQ(base.at("weights_sha256"), weights) << when;
  };
  check("interrupted run");
  o.on_step = nullptr;
  o.resume = true;
  auto resumed = make_model();
  resumed->bert->remove_adapter("sst2");
  Trainer(resumed, f.task, f.train, f.dev, full, std::nullopt, o, f.tokenizer).train();
  EXPECT_NE(base_weights_sha256(*resumed, false, true), weights) << "full fine-tuning trained";
  check("resumed run");
}

// Stacked training (MAD-X's task adapter on a language adapter): the task's adapter trains on top
// of a frozen one, which runs below it in training and in evaluation.
TEST(Trainer, TrainsAnAdapterStackedOnAFrozenOne) {
  Fixture f;
  auto model = make_model();
  model->bert->add_adapter("lang", AdapterConfig::houlsby());
  {
    // Away from the near-identity initialisation, so that lang changes what sst2 sees.
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (parameter_task(item.key()) == "lang") item.value().normal_(0, 0.2);
    }
  }
  auto before = snapshot(model);
  TrainerOptions o = options_for("stacked");
  std::vector<TrainingTask> tasks;
  tasks.push_back({f.task, f.train, f.dev, std::string("sst2"), {"lang"}});
  TrainResult r = Trainer(model, std::move(tasks), FreezePolicy{}, o, f.tokenizer).train();
  bool sst2_trained = false;
  for (const auto& [name, value] : snapshot(model)) {
    if (!before.count(name)) continue;  // sst2's LayerNorm copies, made when training began
    if (parameter_task(name) == "sst2") {
      sst2_trained |= !torch::equal(value, before[name]);
    } else {
      EXPECT_TRUE(torch::equal(value, before[name])) << name << " changed";
    }
  }
  EXPECT_TRUE(sst2_trained);
  const auto run = nlohmann::json::parse(read_file(o.output_dir + "/run.json"));
  EXPECT_EQ(run.at("stacked_on"), nlohmann::json::array({"lang"}));
  // Continued without the stack, the adapter would train on other inputs: refused.
  TrainerOptions more = o;
  more.resume = true;
  more.epochs = 3;
  std::vector<TrainingTask> unstacked;
  unstacked.push_back({f.task, f.train, f.dev, std::string("sst2"), {}});
  EXPECT_ERROR_CONTAINS(
      Trainer(model, std::move(unstacked), FreezePolicy{}, more, f.tokenizer).train(),
      "the checkpoint was made with stacked_on [\"lang\"], this run has none");

  // The best pack on a fresh copy, under lang as trained on: the run's best score. Alone, it is
  // another model.
  auto fresh = make_model();
  fresh->bert->remove_adapter("sst2");
  fresh->bert->add_adapter("lang", AdapterConfig::houlsby());
  {
    torch::NoGradGuard no_grad;
    for (auto& item : fresh->named_parameters()) {
      if (parameter_task(item.key()) == "lang") item.value().copy_(before.at(item.key()));
    }
  }
  const AdapterPackLoad pack = load_adapter_pack(fresh, o.output_dir + "/best");
  EXPECT_EQ(pack.info.stacked_on, std::vector<std::string>{"lang"});  // for eval and serving
  fresh->bert->set_active_stack(Stack{"lang", "sst2"});
  const EvalResult stacked =
      evaluate(fresh, f.task, f.dev, 32, torch::kCPU, Precision::kFloat32, f.tokenizer.pad_id());
  EXPECT_DOUBLE_EQ(stacked.metrics.at("accuracy"), r.best_metrics.at("accuracy"));
  fresh->bert->set_active_adapter("sst2");
  const EvalResult alone =
      evaluate(fresh, f.task, f.dev, 32, torch::kCPU, Precision::kFloat32, f.tokenizer.pad_id());
  EXPECT_NE(alone.loss, stacked.loss);
}

TEST(Trainer, RefusesAStackItCannotTrain) {
  Fixture f;
  auto model = make_model();
  model->bert->add_adapter("lang", AdapterConfig::houlsby());
  auto refused = [&](std::vector<TrainingTask> tasks, const std::string& expected) {
    EXPECT_ERROR_CONTAINS(
        Trainer(model, std::move(tasks), FreezePolicy{}, options_for("stack_refused"), f.tokenizer),
        expected);
  };
  auto task = [&](std::optional<std::string> adapter, std::vector<std::string> below) {
    std::vector<TrainingTask> tasks;
    tasks.push_back({f.task, f.train, f.dev, std::move(adapter), std::move(below)});
    return tasks;
  };
  refused(task("sst2", {"nope"}), "no adapter named \"nope\"");
  refused(task("sst2", {"lang", "sst2"}), "twice");
  auto both = task("sst2", {"lang"});
  both.push_back({f.task, f.train, f.dev, std::string("lang"), {}});
  refused(std::move(both), "stacked on \"lang\", which this run trains");
  model->bert->remove_adapter("sst2");
  refused(task(std::nullopt, {"lang"}), "stacked_on needs an adapter");
}

// Full or head-only training would freeze the adapter and save a model directory, which holds no
// adapters: the trained model would lose them. The Trainer refuses instead.
TEST(Trainer, RefusesToTrainAroundAnAdapterItCannotKeep) {
  Fixture f;
  auto model = make_model();
  for (const char* mode : {"full", "head"}) {
    EXPECT_ERROR_CONTAINS(Trainer(model, f.task, f.train, f.dev, FreezePolicy::from_name(mode),
                                  std::string("sst2"), options_for("refuse"), f.tokenizer),
                          "cannot hold adapters");
  }
}

TEST(Trainer, ReportsNoBestModelWhenNoneWasWritten) {
  Fixture f;
  auto model = make_model();
  TrainerOptions o = options_for("nobest");
  o.on_step = [](int64_t step) {
    if (step == 1) stop_requested() = true;
  };
  TrainResult r =
      Trainer(model, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train();
  EXPECT_TRUE(r.interrupted);
  EXPECT_FALSE(r.best_model.has_value());
  EXPECT_FALSE(file_exists(o.output_dir + "/best/adapter_config.json"));
}

TEST(Trainer, ValidatesItsInputs) {
  Fixture f;
  auto model = make_model();
  TrainerOptions o = options_for("bad");
  o.output_dir.clear();
  EXPECT_ERROR_CONTAINS(
      Trainer(model, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer),
      "an output directory is required");
  EncodedDataset unlabelled = f.dev;
  unlabelled.targets.clear();
  EXPECT_ERROR_CONTAINS(Trainer(model, f.task, f.train, unlabelled, FreezePolicy{},
                                std::string("sst2"), options_for("bad2"), f.tokenizer),
                        "the dev data has no labels");
}

// The events of metrics.jsonl as (event, step) pairs.
std::vector<std::pair<std::string, int64_t>> logged_events(const std::string& run) {
  std::vector<std::pair<std::string, int64_t>> out;
  const std::string text = read_file(run + "/metrics.jsonl");
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const auto event = nlohmann::json::parse(text.substr(start, end - start));
    out.emplace_back(event.at("event").get<std::string>(), event.at("step").get<int64_t>());
    start = end + 1;
  }
  return out;
}

TEST(Trainer, ResumeWithMoreStepsContinuesAndLogsEachEventOnce) {
  Fixture f;  // 96 examples in batches of 16: 6 steps per epoch
  TrainerOptions o = options_for("more_steps");
  o.max_steps = 3;
  o.eval_every = 2;
  o.log_every = 1;
  auto a = make_model();
  EXPECT_EQ(Trainer(a, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
                .train()
                .steps,
            3);
  // What a kill after the checkpoint leaves: events past it, and a line torn mid-write.
  {
    std::ofstream log(o.output_dir + "/metrics.jsonl", std::ios::app);
    log << "{\"event\":\"train\",\"step\":4}\n{\"event\":\"ev";
  }
  make_directories(o.output_dir + "/checkpoints/.tmp-checkpoint-4-999999999");
  o.max_steps = 8;
  o.resume = true;
  auto b = make_model();
  TrainResult resumed =
      Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train();
  EXPECT_EQ(resumed.steps, 8);  // not stopped at the first run's 3
  const auto events = logged_events(o.output_dir);
  std::set<std::pair<std::string, int64_t>> unique(events.begin(), events.end());
  EXPECT_EQ(unique.size(), events.size()) << "an event was logged twice";
  int64_t train_events = 0;
  for (const auto& [event, step] : events) train_events += event == "train";
  EXPECT_EQ(train_events, 8);
  EXPECT_TRUE(unique.count({"resume", 3}));
  EXPECT_FALSE(file_exists(o.output_dir + "/checkpoints/.tmp-checkpoint-4-999999999/x"));
  DIR* dir = ::opendir((o.output_dir + "/checkpoints/.tmp-checkpoint-4-999999999").c_str());
  EXPECT_EQ(dir, nullptr) << "the stale temporary is still there";
  if (dir) ::closedir(dir);
}

// A resume may change options (more steps, another learning rate); the run directory then says
// which, and from which step: run.json's "resumes", the resume event in metrics.jsonl and the
// message, against the options each checkpoint records. The history keeps the resumes before
// the checkpoint's step and drops one at or after it (an attempt whose steps were discarded).
TEST(Trainer, AResumeRecordsWhichOptionsChangedAndFromWhichStep) {
  Fixture f;
  TrainerOptions o = options_for("changed_options");
  o.schedule = ScheduleKind::kConstant;
  o.warmup_ratio = 0;
  o.max_steps = 2;
  auto train = [&] {
    auto model = make_model();
    Trainer(model, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
        .train();
    return nlohmann::json::parse(read_file(o.output_dir + "/run.json"));
  };
  auto resume_event = [&] {
    std::istringstream lines(read_file(o.output_dir + "/metrics.jsonl"));
    nlohmann::json found;
    for (std::string line; std::getline(lines, line);) {
      auto event = nlohmann::json::parse(line);
      if (event.at("event") == "resume") found = event;
    }
    return found;
  };
  EXPECT_EQ(train().at("resumes"), nlohmann::json::array());
  const double lr = o.lr;

  o.resume = true;
  o.max_steps = 4;
  o.lr = lr / 2;
  nlohmann::json run = train();
  ASSERT_EQ(run.at("resumes").size(), 1u) << run.at("resumes");
  EXPECT_EQ(run["resumes"][0]["step"], 2);
  EXPECT_EQ(run["resumes"][0]["changed"]["max_steps"], nlohmann::json::array({2, 4}));
  EXPECT_DOUBLE_EQ(run["resumes"][0]["changed"]["lr"][0].get<double>(), lr);
  EXPECT_DOUBLE_EQ(run["resumes"][0]["changed"]["lr"][1].get<double>(), lr / 2);
  EXPECT_EQ(run["resumes"][0]["changed"].size(), 2u) << run["resumes"][0];
  EXPECT_EQ(resume_event().at("changed"), run["resumes"][0]["changed"]);

  // Another resume: its change is against the options of the checkpoint at step 4.
  o.max_steps = 5;
  const nlohmann::json earlier = run["resumes"][0];
  run = train();
  EXPECT_EQ(run.at("resumes"),
            nlohmann::json::array({earlier, {{"step", 4}, {"changed", {{"max_steps", {4, 5}}}}}}));
  // An attempt that wrote run.json and died before its first checkpoint: its entry (at step 5,
  // the checkpoint's) gives way to the resume that continues from there, which changes nothing.
  run["resumes"].push_back({{"step", 5}, {"changed", {{"lr", {1, 2}}}}});
  write_file_atomic(o.output_dir + "/run.json", run.dump());
  const nlohmann::json kept = run["resumes"];
  const nlohmann::json expected = nlohmann::json::array(
      {kept[0], kept[1], {{"step", 5}, {"changed", nlohmann::json::object()}}});
  EXPECT_EQ(train().at("resumes"), expected);
  EXPECT_FALSE(resume_event().contains("changed")) << "nothing changed: " << resume_event();
}

// A resume continues the model its checkpoint's steps trained: an adapter config that computes
// otherwise (here another activation, which leaves every tensor's shape as it was) is refused
// by name before the checkpoint changes the model; dropout may change.
TEST(Trainer, AResumeRefusesAnAdapterThatComputesOtherwise) {
  Fixture f;
  TrainerOptions o = options_for("changed_adapter");
  o.max_steps = 2;
  auto model_with = [](const AdapterConfig& adapter) {
    torch::manual_seed(3);
    BertConfig config = testing::tiny_config();
    config.vocab_size = 30522;
    BertForSequenceClassification model(config, HeadConfig::classification({"0", "1"}));
    model->bert->add_adapter("sst2", adapter);
    return model;
  };
  auto a = model_with(AdapterConfig::houlsby());
  Trainer(a, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer).train();
  const auto run = nlohmann::json::parse(read_file(o.output_dir + "/run.json"));
  EXPECT_EQ(run.at("adapter_config").at("non_linearity"), AdapterConfig::houlsby().non_linearity);

  o.resume = true;
  o.max_steps = 3;
  AdapterConfig relu = AdapterConfig::houlsby();
  relu.non_linearity = "relu";
  ASSERT_NE(relu.non_linearity, AdapterConfig::houlsby().non_linearity);
  auto b = model_with(relu);
  const auto untouched = snapshot(b);
  EXPECT_ERROR_CONTAINS(
      Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train(),
      "key 'extra.adapters.sst2.adapter_config.non_linearity': the checkpoint's steps trained "
      "task 'sst2' with \"" +
          AdapterConfig::houlsby().non_linearity + "\", this run gives it \"relu\"");
  for (const auto& [name, before] : untouched) {
    EXPECT_TRUE(torch::equal(b->named_parameters()[name], before)) << name;
  }

  AdapterConfig more_dropout = AdapterConfig::houlsby();
  more_dropout.dropout = 0.2;
  auto c = model_with(more_dropout);
  EXPECT_EQ(Trainer(c, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
                .train()
                .steps,
            3);
}

TEST(Trainer, AFinishedRunIsNeitherOverwrittenNorMixedSilently) {
  Fixture f;
  TrainerOptions o = options_for("finished");
  o.max_steps = 6;
  auto a = make_model();
  Trainer(a, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer).train();
  const std::string results = read_file(o.output_dir + "/results.json");
  o.max_steps = 2;
  auto b = make_model();
  EXPECT_ERROR_CONTAINS(
      Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer),
      "continue it with --resume or replace it with --overwrite");
  EXPECT_EQ(read_file(o.output_dir + "/results.json"), results);

  // A resume of another seed cannot continue the data order.
  o.resume = true;
  o.seed = 7;
  EXPECT_ERROR_CONTAINS(
      Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train(),
      "key 'data_seed'");
  // A hostile position in the checkpoint is refused, not followed.
  o.seed = 42;
  const std::string state_path = o.output_dir + "/checkpoints/checkpoint-6/trainer_state.json";
  auto state = nlohmann::json::parse(read_file(state_path));
  state["batch_in_epoch"] = -3;
  write_file_atomic(state_path, state.dump());
  EXPECT_ERROR_CONTAINS(
      Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train(),
      "trainer_state.json: key 'batch_in_epoch' must be a batch position >= 0");
  // So is a best step that is no integer (nlohmann's value() took 2^64 - 1 as -1, "none").
  state["batch_in_epoch"] = 0;
  state["extra"]["best_step"] = 18446744073709551615ull;
  write_file_atomic(state_path, state.dump());
  EXPECT_ERROR_CONTAINS(
      Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train(),
      "trainer_state.json: key 'extra': best_step must be an integer, found 18446744073709551615");

  // --overwrite replaces the run whole: no checkpoint of the old run is left beside the new.
  o.resume = false;
  o.overwrite = true;
  {
    // But not while another run writes the directory: it holds the directory's lock.
    const DirectoryLock other_run(o.output_dir, "run directory");
    EXPECT_ERROR_CONTAINS(
        Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
            .train(),
        "run directory " + o.output_dir + " is being written by another run");
    EXPECT_TRUE(file_exists(state_path)) << "the other run's checkpoint was cleared";
  }
  Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer).train();
  EXPECT_FALSE(file_exists(state_path));
  EXPECT_TRUE(file_exists(o.output_dir + "/checkpoints/checkpoint-2/trainer_state.json"));
  for (const auto& [event, step] : logged_events(o.output_dir)) EXPECT_LE(step, 2) << event;

  // Never into a directory that holds something else, nor over an input.
  write_file_atomic(o.output_dir + "/notes.txt", "mine\n");
  EXPECT_ERROR_CONTAINS(
      Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer),
      "holds \"notes.txt\", which is not part of a run directory");
  EXPECT_EQ(read_file(o.output_dir + "/notes.txt"), "mine\n");
  ::unlink((o.output_dir + "/notes.txt").c_str());
  o.inputs = {o.output_dir + "/best"};
  EXPECT_ERROR_CONTAINS(
      Trainer(b, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer),
      "holds an input");
}

TEST(Trainer, OptionsOutOfRangeAreRefusedBeforeAnythingIsWritten) {
  const TrainerOptions good = options_for("ranges");
  const std::vector<std::pair<std::function<void(TrainerOptions&)>, std::string>> cases = {
      {[](TrainerOptions& o) { o.lr = std::nan(""); }, "lr must be a finite number > 0, got nan"},
      {[](TrainerOptions& o) { o.lr = 0; }, "lr must be a finite number > 0"},
      {[](TrainerOptions& o) { o.max_steps = -1; }, "max_steps must be an integer >= 0, got -1"},
      {[](TrainerOptions& o) { o.eval_every = -2; }, "eval_every"},
      {[](TrainerOptions& o) { o.early_stopping_patience = -1; }, "early_stopping_patience"},
      {[](TrainerOptions& o) { o.weight_decay = -0.1; }, "weight_decay"},
      {[](TrainerOptions& o) { o.max_grad_norm = INFINITY; }, "max_grad_norm"},
      {[](TrainerOptions& o) { o.warmup_ratio = 1.5; },
       "warmup_ratio must be a number from 0 to 1"},
      {[](TrainerOptions& o) { o.resume = o.overwrite = true; }, "choose one"},
      {[](TrainerOptions& o) { o.precision = Precision::kFloat16; },
       "precision fp16 is not supported on the CPU"},
  };
  for (const auto& [breaks, message] : cases) {
    TrainerOptions o = good;
    breaks(o);
    EXPECT_ERROR_CONTAINS(Trainer::check_options(o), message);
  }
  DIR* dir = ::opendir(good.output_dir.c_str());
  EXPECT_EQ(dir, nullptr) << "a refused run created its directory";
  if (dir) ::closedir(dir);
}

// AdapterDrop's cache: with dropout off, a run that reuses the frozen layers' outputs after the
// first epoch trains what a run computing them every time trains.
TEST(Trainer, DropCacheOfFrozenLayersTrainsAsWithoutIt) {
  Fixture f;
  auto make = [] {
    // Without dropout, the cached layers' outputs repeat exactly.
    auto model = testing::three_layer_classifier(testing::tiny_config_without_dropout(), 3);
    model->bert->add_adapter("sst2", testing::adapter_above_two_layers());
    return model;
  };
  auto plain = make();
  TrainerOptions o = options_for("drop_plain");
  o.epochs = 2;
  const TrainResult without =
      Trainer(plain, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train();
  EXPECT_EQ(without.cached_layers, 0);
  auto cached = make();
  o = options_for("drop_cached");
  o.epochs = 2;
  o.cache_frozen_layers = true;
  const TrainResult with =
      Trainer(cached, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train();
  EXPECT_EQ(with.cached_layers, 2);
  EXPECT_EQ(with.batches_from_cache, 6) << "the second epoch's 6 batches";
  const auto dev_examples = static_cast<int64_t>(f.dev.encodings.size());
  EXPECT_EQ(with.eval_batches_from_cache,
            (dev_examples + o.eval_batch_size - 1) / o.eval_batch_size)
      << "the second evaluation's batches";
  EXPECT_EQ(without.eval_batches_from_cache, 0);
  // A cap that holds the training examples' rows but not the dev set's beside them: the training
  // cache stays, the evaluations run without one.
  int64_t training_tokens = 0;
  for (const auto& e : f.train.encodings) {
    training_tokens += static_cast<int64_t>(e.input_ids.size());
  }
  auto capped = make();
  o = options_for("drop_capped");
  o.epochs = 2;
  o.cache_frozen_layers = true;
  o.cache_max_bytes = training_tokens * capped->bert->config().hidden_size * 4;
  const TrainResult training_only =
      Trainer(capped, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
          .train();
  EXPECT_EQ(training_only.batches_from_cache, 6);
  EXPECT_EQ(training_only.eval_batches_from_cache, 0);
  auto expected = snapshot(plain);
  for (const auto& [name, value] : snapshot(cached)) {
    EXPECT_LT(testing::max_abs_diff(value, expected[name]), 1e-4) << name;
  }
  EXPECT_EQ(with.best_step, without.best_step);

  auto no_drop = make_model();  // adapters in every layer: nothing to cache
  o = options_for("drop_none");
  o.cache_frozen_layers = true;
  EXPECT_ERROR_CONTAINS(
      Trainer(no_drop, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer),
      "leaves out no lowest layer");
}

// Dev evaluation from the frozen-layer cache gives what evaluate() gives, in float32 and bf16:
// the first call fills the cache (each dev example's rows computed once, kept without their
// padding) and the next is served from it whole.
TEST(Trainer, EvaluationFromTheFrozenLayerCacheGivesWhatEvaluateGives) {
  Fixture f;
  // Dropout on: evaluation runs without it.
  auto model = testing::three_layer_classifier(testing::tiny_config(), 3);
  model->bert->add_adapter("sst2", testing::adapter_above_two_layers());
  testing::randomize_task_tensors(*model);
  model->bert->set_active_adapter("sst2");
  const c10::Device cpu(c10::kCPU);
  for (const Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    model->train();  // as a trainer's model is between evaluations
    const EvalResult expected =
        evaluate(model, f.task, f.dev, 16, cpu, precision, f.tokenizer.pad_id());
    detail::FrozenLayerCache cache(2, f.dev.encodings.size());
    for (int call = 0; call < 2; ++call) {
      const EvalResult got = detail::evaluate_cached(model, f.task, f.dev, 16, cpu, precision,
                                                     f.tokenizer.pad_id(), nullptr, &cache);
      const std::string what =
          precision_name(precision) + ", call " + std::to_string(call) + ", example ";
      EXPECT_EQ(got.predictions, expected.predictions) << what;
      ASSERT_EQ(got.logits.size(), expected.logits.size());
      for (size_t i = 0; i < got.logits.size(); ++i) {
        for (size_t k = 0; k < got.logits[i].size(); ++k) {
          EXPECT_NEAR(got.logits[i][k], expected.logits[i][k], 1e-6) << what << i;
        }
      }
      EXPECT_NEAR(got.loss, expected.loss, 1e-6) << what;
      EXPECT_EQ(got.metrics, expected.metrics) << what;
      EXPECT_TRUE(model->is_training()) << what;
    }
    EXPECT_EQ(cache.rows_computed(), 64);
    EXPECT_EQ(cache.batches_from_cache(), 4) << "the second call's 4 batches";
  }
}

TEST(Trainer, LastLayerAtTheFirstPositionTrainsAsWithEveryPosition) {
  // Without dropout, in float32: the same loss and gradients at every step, so the same weights
  // up to the order of sums; run.json records the choice.
  Fixture f;
  auto train = [&](const std::string& name, bool first_position) {
    torch::manual_seed(3);
    BertConfig config = testing::tiny_config_without_dropout();
    config.vocab_size = 30522;
    BertForSequenceClassification model(config, HeadConfig::classification({"0", "1"}));
    model->bert->add_adapter("sst2", AdapterConfig::houlsby());
    TrainerOptions o = options_for(name);
    o.epochs = 1;
    o.last_layer_first_position = first_position;
    Trainer(model, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
        .train();
    return std::make_pair(model, nlohmann::json::parse(read_file(o.output_dir + "/run.json")));
  };
  auto [every, every_run] = train("first_position_off", false);
  auto [first, first_run] = train("first_position_on", true);
  EXPECT_EQ(every->training_last_layer(), LastLayerOutput::kAllPositions);
  EXPECT_EQ(first->training_last_layer(), LastLayerOutput::kFirstPosition);
  EXPECT_EQ(every_run.at("options").at("last_layer_first_position"), false);
  EXPECT_EQ(first_run.at("options").at("last_layer_first_position"), true);
  auto expected = snapshot(every);
  for (const auto& [name, value] : snapshot(first)) {
    EXPECT_LT(testing::max_abs_diff(value, expected[name]), 1e-5) << name;
  }
}

TEST(Trainer, GradientCheckpointingTrainsAsWithoutIt) {
  // With dropout, in bf16 (the frozen weights stored in bf16, the layers run again under
  // autocast in backward): the same run.
  Fixture f;
  // One epoch in bf16 in run directory `name`, with `configure` applied to the options; the
  // trained model and its run.json.
  auto train = [&](const std::string& name, const std::function<void(TrainerOptions&)>& configure) {
    auto model = make_model();
    TrainerOptions o = options_for(name);
    o.precision = Precision::kBFloat16;
    o.epochs = 1;
    configure(o);
    Trainer(model, f.task, f.train, f.dev, FreezePolicy{}, std::string("sst2"), o, f.tokenizer)
        .train();
    return std::make_pair(model, nlohmann::json::parse(read_file(o.output_dir + "/run.json")));
  };
  auto plain = train("checkpointing_plain", [](TrainerOptions&) {}).first;
  auto expected = snapshot(plain);
  auto same_weights = [&](BertForSequenceClassification& model) {
    for (const auto& [name, value] : snapshot(model)) {
      EXPECT_LT(testing::max_abs_diff(value, expected[name]), 1e-5) << name;
    }
  };

  auto [checkpointed, run] =
      train("checkpointing_on", [](TrainerOptions& o) { o.gradient_checkpointing = true; });
  EXPECT_TRUE(checkpointed->bert->encoder->gradient_checkpointing());
  same_weights(checkpointed);
  EXPECT_EQ(run.at("options").at("gradient_checkpointing"), true) << run.dump();
  EXPECT_EQ(run.at("options").at("recompute_attention_probabilities"), false) << run.dump();

  // The finer grain: only the attention probabilities computed again in backward.
  auto [recomputed, attention_run] = train("checkpointing_attention", [](TrainerOptions& o) {
    o.recompute_attention_probabilities = true;
  });
  EXPECT_FALSE(recomputed->bert->encoder->gradient_checkpointing());
  EXPECT_TRUE(recomputed->bert->encoder->at(0)->attention->self->recompute_probabilities());
  same_weights(recomputed);
  EXPECT_EQ(attention_run.at("options").at("recompute_attention_probabilities"), true);
}

}  // namespace
}  // namespace adaptertune
