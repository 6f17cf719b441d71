#include "adaptertune/training/question_answering_trainer.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <map>

#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/error.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/parameter_names.h"
#include "adaptertune/runtime.h"
#include "adaptertune/text/wordpiece.h"
#include "adaptertune/training/interrupt.h"
#include "test_util.h"
#include "training/cached_evaluation.h"
#include "training/frozen_layer_cache.h"
#include "training_test_util.h"

namespace adaptertune {
namespace {

const std::string kData = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";
const std::string kSquad = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/squad/";

struct Fixture {
  WordPieceTokenizer tokenizer{kData + "/vocab/bert-base-uncased-vocab.txt"};
  SquadDataset data = read_squad(kSquad + "dev-v1.1.json");
  QuestionAnsweringOptions qa;
  Fixture() {
    qa.features.max_length = 48;
    qa.features.doc_stride = 12;
    qa.features.max_query_length = 12;
  }
  BertForQuestionAnswering model() const {
    set_seed(7);
    BertConfig config = testing::tiny_config();
    config.vocab_size = 30522;
    BertForQuestionAnswering m(config);
    m->bert->add_adapter("squad", AdapterConfig::houlsby());
    return m;
  }
  // Three layers of `config`, adapter "squad" in the last only: two for the frozen-layer cache.
  static BertForQuestionAnswering model_caching_two_layers(BertConfig config) {
    set_seed(7);
    config.vocab_size = 30522;
    config.num_hidden_layers = 3;
    BertForQuestionAnswering m(config);
    AdapterConfig adapter = AdapterConfig::houlsby();
    adapter.leave_out = {0, 1};
    m->bert->add_adapter("squad", adapter);
    return m;
  }
  TrainerOptions options(const std::string& name) const {
    TrainerOptions o = testing::short_run_options(name);
    o.batch_size = 4;
    o.epochs = 3;
    o.eval_batch_size = 8;
    return o;
  }
};

std::vector<std::pair<std::string, at::Tensor>> trainable_of(torch::nn::Module& model) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : model.named_parameters()) {
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value().detach().clone());
  }
  return out;
}

// Whether any parameter that `which` selects by name differs between `a` and `b`.
bool any_differs(torch::nn::Module& a, torch::nn::Module& b,
                 const std::function<bool(const std::string&)>& which) {
  const auto b_parameters = b.named_parameters();
  for (const auto& item : a.named_parameters()) {
    if (which(item.key()) && !torch::equal(item.value(), b_parameters[item.key()])) return true;
  }
  return false;
}

class PredictSquadTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(PredictSquadTest);

TEST_P(PredictSquadTest, RunsAModelLoadedOnTheCpuOnTheDeviceItIsGiven) {
  // As `adaptertune eval --task squad` calls it: a model loaded on the CPU, --device's device.
  Fixture f;
  BertForQuestionAnswering on_cpu = f.model();
  const auto reference =
      predict_squad(on_cpu, f.data, f.tokenizer, f.qa, 8, torch::kCPU, Precision::kFloat32);
  BertForQuestionAnswering model = f.model();
  const auto got =
      predict_squad(model, f.data, f.tokenizer, f.qa, 8, device(), Precision::kFloat32);
  for (const auto& parameter : model->parameters()) {
    EXPECT_EQ(parameter.device(), device()) << "the model stays where it ran";
  }
  ASSERT_EQ(got.size(), reference.size());
  for (const auto& [id, answer] : reference) {
    EXPECT_NEAR(got.at(id).score, answer.score, 1e-3) << id;  // a near tie may pick another span
  }
}

// Answering nothing, when the options allow it, holds on any data (a pack that learnt it on SQuAD
// v2.0 answers a v1.1 file as it answers when served); v2.0 data allows it by itself.
TEST(PredictSquad, AnswersNothingWhereTheOptionsOrTheDataAllowIt) {
  Fixture f;
  BertForQuestionAnswering model = f.model();
  QuestionAnsweringOptions qa = f.qa;
  qa.answers.null_score_threshold = -1e9;  // where the null score may win, it does
  auto predict = [&](const SquadDataset& data) {
    return predict_squad(model, data, f.tokenizer, qa, 8, torch::kCPU, Precision::kFloat32);
  };
  auto answered = [](const std::map<std::string, SquadAnswerPrediction>& answers) {
    return std::count_if(answers.begin(), answers.end(),
                         [](const auto& item) { return !item.second.text.empty(); });
  };
  ASSERT_FALSE(f.data.v2);
  EXPECT_GT(answered(predict(f.data)), 0);
  qa.answers.allow_no_answer = true;
  EXPECT_EQ(answered(predict(f.data)), 0);
  qa.answers.allow_no_answer = false;
  SquadDataset v2 = f.data;
  v2.v2 = true;
  EXPECT_EQ(answered(predict(v2)), 0);
  EXPECT_TRUE(qa.answers.for_data(v2).allow_no_answer);
  EXPECT_FALSE(qa.answers.for_data(f.data).allow_no_answer);
}

TEST(QuestionAnsweringTrainer, TrainsAnAdapterAndItsPackReproducesTheBestScore) {
  Fixture f;
  BertForQuestionAnswering model = f.model();
  const TrainerOptions options = f.options("qa_pack");
  QuestionAnsweringTrainer trainer(model, f.data, f.data, FreezePolicy{}, "squad", options, f.qa,
                                   f.tokenizer);
  const TrainResult result = trainer.train();
  ASSERT_TRUE(result.best_model);
  EXPECT_GT(result.steps, 0);
  EXPECT_TRUE(result.best_metrics.count("f1"));
  // Only the adapter, the task's LayerNorms and the span head trained; the base did not.
  for (const auto& item : model->named_parameters()) {
    const bool trains = item.value().requires_grad();
    const bool expected = parameter_task(item.key()) == std::optional<std::string>("squad") ||
                          item.key().rfind("qa_outputs.", 0) == 0;
    EXPECT_EQ(trains, expected) << item.key();
  }
  // The pack records the windows and answer options it was evaluated with.
  const AdapterPackInfo info = read_adapter_pack_info(*result.best_model);
  ASSERT_TRUE(info.question_answering);
  EXPECT_EQ(info.max_length, 48);
  EXPECT_EQ(info.question_answering->features.max_length, 48);
  EXPECT_EQ(info.question_answering->features.doc_stride, 12);
  EXPECT_EQ(info.question_answering->features.max_query_length, 12);
  EXPECT_EQ(info.question_answering->answers.n_best, f.qa.answers.n_best);
  EXPECT_EQ(info.question_answering->answers.max_answer_length, f.qa.answers.max_answer_length);
  EXPECT_EQ(info.question_answering->answers.null_score_threshold,
            f.qa.answers.null_score_threshold);
  EXPECT_FALSE(info.question_answering->answers.allow_no_answer);  // SQuAD v1.1's dev data
  // The pack on a fresh base gives the logged best score.
  BertForQuestionAnswering fresh = f.model();
  fresh->bert->remove_adapter("squad");
  const AdapterPackLoad load = load_adapter_pack(fresh, *result.best_model);
  EXPECT_TRUE(load.head_loaded);
  EXPECT_TRUE(load.warnings.empty()) << load.warnings.front();
  const SquadEvalResult eval = evaluate_squad(fresh, f.data, f.tokenizer, f.qa, 8,
                                              c10::Device(c10::kCPU), Precision::kFloat32);
  EXPECT_DOUBLE_EQ(eval.metrics.at("f1"), result.best_metrics.at("f1"));
  EXPECT_DOUBLE_EQ(eval.metrics.at("exact"), result.best_metrics.at("exact"));
  // A span pack is no classifier's pack, and the other way round.
  BertConfig big = testing::tiny_config();
  big.vocab_size = 30522;
  BertForSequenceClassification sized(big, HeadConfig::classification({"a", "b"}));
  EXPECT_ERROR_CONTAINS(load_adapter_pack(sized, *result.best_model),
                        "the pack's head is a span head (question answering)");
  EXPECT_NO_THROW(load_adapter_pack(sized, *result.best_model, std::nullopt, /*load_head=*/false));
}

// MAD-X's span task on a language adapter: the span adapter trains on top of a frozen one, which
// runs below it in training and in evaluation, as the Trainer stacks a classifier's.
TEST(QuestionAnsweringTrainer, TrainsAnAdapterStackedOnAFrozenOne) {
  Fixture f;
  BertForQuestionAnswering model = f.model();
  model->bert->add_adapter("lang", AdapterConfig::houlsby());
  std::map<std::string, at::Tensor> lang;
  {
    // Away from the near-identity initialisation, so that lang changes what squad sees.
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (parameter_task(item.key()) == std::optional<std::string>("lang")) {
        item.value().normal_(0, 0.2);
        lang[item.key()] = item.value().clone();
      }
    }
  }
  ASSERT_FALSE(lang.empty());
  const TrainerOptions options = f.options("qa_stacked");
  const TrainResult result = QuestionAnsweringTrainer(model, f.data, f.data, FreezePolicy{},
                                                      "squad", options, f.qa, f.tokenizer, {"lang"})
                                 .train();
  ASSERT_TRUE(result.best_model);
  for (const auto& item : model->named_parameters()) {
    if (!lang.count(item.key())) continue;
    EXPECT_FALSE(item.value().requires_grad()) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), lang.at(item.key()))) << item.key() << " changed";
  }
  // lang ran below squad: the same run without the stack trains squad otherwise.
  BertForQuestionAnswering plain = f.model();
  plain->bert->add_adapter("lang", AdapterConfig::houlsby());
  {
    torch::NoGradGuard no_grad;
    for (auto& item : plain->named_parameters()) {
      if (lang.count(item.key())) item.value().copy_(lang.at(item.key()));
    }
  }
  QuestionAnsweringTrainer(plain, f.data, f.data, FreezePolicy{}, "squad",
                           f.options("qa_unstacked"), f.qa, f.tokenizer)
      .train();
  EXPECT_TRUE(any_differs(*model, *plain, [](const std::string& name) {
    return parameter_task(name) == std::optional<std::string>("squad");
  })) << "squad trained as if lang were not below it";
  const auto run = nlohmann::json::parse(read_file(options.output_dir + "/run.json"));
  EXPECT_EQ(run.at("stacked_on"), nlohmann::json::array({"lang"}));
  // Continued without the stack, the adapter would train on other inputs: refused.
  TrainerOptions more = options;
  more.resume = true;
  more.epochs = 4;
  EXPECT_ERROR_CONTAINS(QuestionAnsweringTrainer(model, f.data, f.data, FreezePolicy{}, "squad",
                                                 more, f.qa, f.tokenizer)
                            .train(),
                        "the checkpoint was made with stacked_on [\"lang\"], this run has none");

  // The best pack on a fresh copy, under lang as trained on: the run's best score. Alone, it is
  // another model.
  BertForQuestionAnswering fresh = f.model();
  fresh->bert->remove_adapter("squad");
  fresh->bert->add_adapter("lang", AdapterConfig::houlsby());
  {
    torch::NoGradGuard no_grad;
    for (auto& item : fresh->named_parameters()) {
      if (lang.count(item.key())) item.value().copy_(lang.at(item.key()));
    }
  }
  const AdapterPackLoad pack = load_adapter_pack(fresh, *result.best_model);
  EXPECT_EQ(pack.info.stacked_on, std::vector<std::string>{"lang"});  // for eval and serving
  fresh->bert->set_active_stack(Stack{"lang", "squad"});
  const auto cpu = c10::Device(c10::kCPU);
  const SquadEvalResult stacked =
      evaluate_squad(fresh, f.data, f.tokenizer, f.qa, 8, cpu, Precision::kFloat32);
  EXPECT_DOUBLE_EQ(stacked.metrics.at("f1"), result.best_metrics.at("f1"));
  fresh->bert->set_active_adapter("squad");
  const SquadEvalResult alone =
      evaluate_squad(fresh, f.data, f.tokenizer, f.qa, 8, cpu, Precision::kFloat32);
  bool differs = false;
  for (const auto& [id, answer] : stacked.answers)
    differs |= alone.answers.at(id).score != answer.score;
  EXPECT_TRUE(differs) << "the stack's lower adapter changed no answer's score";
}

// AdapterFusion's span task: the fusion layers, the fusion's LayerNorm copies and the span head
// train on frozen adapters, with the fusion's value regularisation, and the best fusion pack
// gives the run's best score on a base holding the adapters it fuses.
TEST(QuestionAnsweringTrainer, TrainsAFusionOfFrozenAdapters) {
  Fixture f;
  std::map<std::string, at::Tensor> fused_weights;  // the adapters "a" and "b", away from identity
  auto add_fused_adapters = [&](BertForQuestionAnswering& model) {
    for (const char* name : {"a", "b"}) model->bert->add_adapter(name, AdapterConfig::houlsby());
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      const std::optional<std::string> task = parameter_task(item.key());
      if (task != std::optional<std::string>("a") && task != std::optional<std::string>("b")) {
        continue;
      }
      if (!fused_weights.count(item.key())) {
        fused_weights[item.key()] = at::randn_like(item.value()) * 0.2;
      }
      item.value().copy_(fused_weights.at(item.key()));
    }
  };
  auto fused_model = [&](const FusionConfig& fusion) {
    BertForQuestionAnswering model = f.model();
    add_fused_adapters(model);
    torch::manual_seed(11);  // the same fusion layers in every model
    model->bert->add_fusion({"a", "b"}, fusion);
    return model;
  };
  BertForQuestionAnswering model = fused_model(FusionConfig::dynamic());
  std::map<std::string, at::Tensor> before;
  for (const auto& item : model->named_parameters()) {
    before[item.key()] = item.value().detach().clone();
  }
  const TrainerOptions options = f.options("qa_fusion");
  const TrainResult result = QuestionAnsweringTrainer(model, f.data, f.data, FreezePolicy{}, "a,b",
                                                      options, f.qa, f.tokenizer)
                                 .train();
  ASSERT_TRUE(result.best_model);
  EXPECT_TRUE(file_exists(*result.best_model + "/adapter_fusion_config.json"));
  bool fusion_trained = false;
  for (const auto& item : model->named_parameters()) {
    const bool own = parameter_task(item.key()) == std::optional<std::string>("a,b") ||
                     item.key().rfind("qa_outputs.", 0) == 0;
    EXPECT_EQ(item.value().requires_grad(), own) << item.key();
    const auto was = before.find(item.key());
    if (was == before.end()) {  // added by the training (the fusion's LayerNorm copies)
      EXPECT_TRUE(own) << item.key();
      continue;
    }
    const bool changed = !torch::equal(item.value(), was->second);
    EXPECT_TRUE(own || !changed) << item.key() << " changed";
    fusion_trained |= own && is_fusion_parameter(item.key()) && changed;
  }
  EXPECT_TRUE(fusion_trained);
  const auto run = nlohmann::json::parse(read_file(options.output_dir + "/run.json"));
  EXPECT_EQ(run.at("adapter"), "a,b");
  EXPECT_EQ(run.at("fusion_config").at("regularization"), true);
  // The value regularisation is part of what trains: without it the fusion trains otherwise.
  FusionConfig unregularized = FusionConfig::dynamic();
  unregularized.regularization = false;
  BertForQuestionAnswering other = fused_model(unregularized);
  QuestionAnsweringTrainer(other, f.data, f.data, FreezePolicy{}, "a,b",
                           f.options("qa_fusion_unregularized"), f.qa, f.tokenizer)
      .train();
  EXPECT_TRUE(any_differs(*model, *other, [](const std::string& name) {
    return is_fusion_parameter(name) && name.find("value") != std::string::npos;
  })) << "the fusion trained as if it had no value regularisation";
  // The run continues only with the fusion its checkpoint's steps trained (the tensors would fit).
  TrainerOptions resumed = options;
  resumed.resume = true;
  resumed.max_steps = 100;
  BertForQuestionAnswering continued = fused_model(unregularized);
  EXPECT_ERROR_CONTAINS(QuestionAnsweringTrainer(continued, f.data, f.data, FreezePolicy{}, "a,b",
                                                 resumed, f.qa, f.tokenizer)
                            .train(),
                        "key 'extra.adapters.a,b.fusion_config.regularization': the checkpoint's "
                        "steps trained task 'a,b' with true, this run gives it false");

  // The best fusion pack on a fresh base holding the adapters it fuses: the run's best score.
  BertForQuestionAnswering fresh = f.model();
  add_fused_adapters(fresh);
  const AdapterPackLoad load = load_adapter_pack(fresh, *result.best_model);
  EXPECT_TRUE(load.head_loaded);
  ASSERT_TRUE(load.info.fusion);
  EXPECT_EQ(load.info.fused, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(load.info.question_answering);
  const SquadEvalResult eval = evaluate_squad(fresh, f.data, f.tokenizer, f.qa, 8,
                                              c10::Device(c10::kCPU), Precision::kFloat32);
  EXPECT_DOUBLE_EQ(eval.metrics.at("f1"), result.best_metrics.at("f1"));
  EXPECT_DOUBLE_EQ(eval.metrics.at("exact"), result.best_metrics.at("exact"));
  BertForQuestionAnswering bare = f.model();
  EXPECT_ERROR_CONTAINS(load_adapter_pack(bare, *result.best_model), "needs the adapters it fuses");
}

TEST(QuestionAnsweringTrainer, RefusesAStackItCannotTrain) {
  Fixture f;
  BertForQuestionAnswering model = f.model();
  model->bert->add_adapter("lang", AdapterConfig::houlsby());
  auto refused = [&](FreezePolicy policy, std::optional<std::string> adapter,
                     std::vector<std::string> below, const std::string& expected) {
    EXPECT_ERROR_CONTAINS(QuestionAnsweringTrainer(
                              model, f.data, f.data, policy, std::move(adapter),
                              f.options("qa_stack_refused"), f.qa, f.tokenizer, std::move(below)),
                          expected);
  };
  refused(FreezePolicy{}, "squad", {"nope"}, "no adapter named \"nope\"");
  refused(FreezePolicy{}, "squad", {"lang", "squad"}, "twice");
  refused(FreezePolicy::from_name("full"), std::nullopt, {"lang"}, "stacked_on needs an adapter");
}

class QuestionAnsweringTrainerOnDeviceTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(QuestionAnsweringTrainerOnDeviceTest);

TEST_P(QuestionAnsweringTrainerOnDeviceTest, AnInterruptedRunResumesToTheSameWeights) {
  Fixture f;
  BertForQuestionAnswering whole = f.model();
  TrainerOptions options = f.options("qa_whole");
  options.device = device();
  options.eval_every = 3;
  QuestionAnsweringTrainer(whole, f.data, f.data, FreezePolicy{}, "squad", options, f.qa,
                           f.tokenizer)
      .train();

  BertForQuestionAnswering parted = f.model();
  options = f.options("qa_parted");
  options.device = device();
  options.eval_every = 3;
  options.on_step = [](int64_t step) {
    if (step == 4) stop_requested() = true;
  };
  const TrainResult first = QuestionAnsweringTrainer(parted, f.data, f.data, FreezePolicy{},
                                                     "squad", options, f.qa, f.tokenizer)
                                .train();
  ASSERT_TRUE(first.interrupted);
  EXPECT_EQ(first.steps, 4);
  BertForQuestionAnswering resumed = f.model();
  options.on_step = nullptr;
  options.resume = true;
  const TrainResult rest = QuestionAnsweringTrainer(resumed, f.data, f.data, FreezePolicy{},
                                                    "squad", options, f.qa, f.tokenizer)
                               .train();
  EXPECT_FALSE(rest.interrupted);
  // The same options: the run directory records a resume at step 4 that changed none.
  EXPECT_EQ(nlohmann::json::parse(read_file(options.output_dir + "/run.json")).at("resumes"),
            nlohmann::json::parse(R"([{"step": 4, "changed": {}}])"));
  const auto expected = trainable_of(*whole);
  const auto actual = trainable_of(*resumed);
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_EQ(actual[i].second.device(), device()) << actual[i].first;
    EXPECT_TRUE(testing::same_weights_on(device(), actual[i].second, expected[i].second))
        << actual[i].first;
  }
  // Answers extracted otherwise change only what dev evaluation scores: a resume may, and the
  // run directory records it with the other options that changed.
  QuestionAnsweringOptions fewer = f.qa;
  fewer.answers.n_best = 5;
  options.epochs = 4;
  QuestionAnsweringTrainer(resumed, f.data, f.data, FreezePolicy{}, "squad", options, fewer,
                           f.tokenizer)
      .train();
  const nlohmann::json run = nlohmann::json::parse(read_file(options.output_dir + "/run.json"));
  const nlohmann::json& resumes = run.at("resumes");
  ASSERT_EQ(resumes.size(), 2u) << resumes;
  EXPECT_EQ(resumes[1].at("changed"),
            nlohmann::json::parse(R"({"epochs": [3, 4], "n_best": [20, 5]})"));
  // Each option once: the answers' with the trainer's, the windows' under "squad".
  EXPECT_EQ(run.at("options").at("n_best"), 5);
  EXPECT_EQ(run.at("options").at("max_answer_length"), f.qa.answers.max_answer_length);
  EXPECT_EQ(run.at("squad"), (nlohmann::json{{"doc_stride", f.qa.features.stride()},
                                             {"max_query_length", f.qa.features.query_length()}}));
  // Other windows are other data: the checkpoint says which key differs.
  QuestionAnsweringOptions other = f.qa;
  other.features.doc_stride = 10;
  options.max_steps = 20;
  EXPECT_ERROR_CONTAINS(QuestionAnsweringTrainer(resumed, f.data, f.data, FreezePolicy{}, "squad",
                                                 options, other, f.tokenizer)
                            .train(),
                        "the checkpoint was made with");
}

// AdapterDrop's cache for a span head: with dropout off, a run that reuses the frozen layers'
// outputs after the first epoch trains what a run computing them every time trains. The span
// loss reads padded positions too, so the cache must give them as a batch computed whole does
// (rows kept without their padding, padded with zeros, train otherwise).
TEST(QuestionAnsweringTrainer, DropCacheOfFrozenLayersTrainsAsWithoutIt) {
  Fixture f;
  auto make = [] {
    return Fixture::model_caching_two_layers(testing::tiny_config_without_dropout());
  };
  auto train = [&](BertForQuestionAnswering& model, const TrainerOptions& o) {
    return QuestionAnsweringTrainer(model, f.data, f.data, FreezePolicy{}, "squad", o, f.qa,
                                    f.tokenizer)
        .train();
  };
  TrainerOptions plain_options = f.options("qa_drop_plain");
  plain_options.epochs = 2;
  TrainerOptions cached_options = f.options("qa_drop_cached");
  cached_options.epochs = 2;
  cached_options.cache_frozen_layers = true;
  BertForQuestionAnswering plain = make(), cached = make();
  const TrainResult without = train(plain, plain_options);
  const TrainResult with = train(cached, cached_options);
  EXPECT_EQ(without.cached_layers, 0);
  EXPECT_EQ(with.cached_layers, 2);
  EXPECT_EQ(with.batches_from_cache, with.tasks.at(0).batches / 2) << "the second epoch's";
  const auto expected = trainable_of(*plain);
  const auto got = trainable_of(*cached);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LT(testing::max_abs_diff(got[i].second, expected[i].second), 1e-4) << got[i].first;
  }
  EXPECT_EQ(with.best_step, without.best_step);
  const nlohmann::json results =
      nlohmann::json::parse(read_file(cached_options.output_dir + "/results.json"));
  EXPECT_EQ(results.at("cached_layers"), 2);
  // The second evaluation's batches of dev windows came from the cache too.
  const auto dev_windows =
      static_cast<int64_t>(make_squad_features(f.data, f.tokenizer, f.qa.features).features.size());
  const int64_t dev_batches =
      (dev_windows + cached_options.eval_batch_size - 1) / cached_options.eval_batch_size;
  EXPECT_EQ(with.eval_batches_from_cache, dev_batches);
  EXPECT_EQ(results.at("eval_batches_from_cache"), dev_batches);
  EXPECT_EQ(without.eval_batches_from_cache, 0);
}

// Span evaluation from the frozen-layer cache answers as predict_squad() does, in float32 and
// bf16: the first call fills the cache (each window's rows computed once, kept without their
// padding, which no answer reads) and the next is served from it whole.
TEST(QuestionAnsweringTrainer, EvaluationFromTheFrozenLayerCacheAnswersAsPredictSquad) {
  Fixture f;
  // Dropout on: evaluation runs without it.
  BertForQuestionAnswering model = Fixture::model_caching_two_layers(testing::tiny_config());
  testing::randomize_task_tensors(*model);
  model->bert->set_active_adapter("squad");
  const SquadFeatures features = make_squad_features(f.data, f.tokenizer, f.qa.features);
  const auto windows = static_cast<int64_t>(features.features.size());
  const c10::Device cpu(c10::kCPU);
  for (const Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    model->train();  // as a trainer's model is between evaluations
    const auto expected =
        predict_squad(model, f.data, features, f.tokenizer, f.qa.answers, 4, cpu, precision);
    detail::FrozenLayerCache cache(2, features.features.size());
    for (int call = 0; call < 2; ++call) {
      const auto got = detail::predict_squad_cached(
          model, f.data, features, f.tokenizer, f.qa.answers, 4, cpu, precision, nullptr, &cache);
      ASSERT_EQ(got.size(), expected.size());
      for (const auto& [id, answer] : expected) {
        const std::string what =
            precision_name(precision) + ", call " + std::to_string(call) + ", question " + id;
        EXPECT_EQ(got.at(id).text, answer.text) << what;
        EXPECT_NEAR(got.at(id).score, answer.score, 1e-5) << what;
        EXPECT_NEAR(got.at(id).null_score, answer.null_score, 1e-5) << what;
      }
      EXPECT_TRUE(model->is_training());
    }
    EXPECT_EQ(cache.rows_computed(), windows);
    EXPECT_EQ(cache.batches_from_cache(), (windows + 3) / 4) << "the second call's batches";
  }
}

TEST(QuestionAnsweringTrainer, RefusesWhatItCannotDoByName) {
  Fixture f;
  BertForQuestionAnswering model = f.model();  // adapters in every layer: nothing to cache
  TrainerOptions options = f.options("qa_refuse");
  options.cache_frozen_layers = true;
  EXPECT_ERROR_CONTAINS(QuestionAnsweringTrainer(model, f.data, f.data, FreezePolicy{}, "squad",
                                                 options, f.qa, f.tokenizer),
                        "leaves out no lowest layer");
  options = f.options("qa_refuse");
  options.last_layer_first_position = true;
  EXPECT_ERROR_CONTAINS(QuestionAnsweringTrainer(model, f.data, f.data, FreezePolicy{}, "squad",
                                                 options, f.qa, f.tokenizer),
                        "spans are read from every position");
  options = f.options("qa_refuse");
  EXPECT_ERROR_CONTAINS(QuestionAnsweringTrainer(model, f.data, f.data, FreezePolicy{}, "other",
                                                 options, f.qa, f.tokenizer),
                        "other");
  EXPECT_ERROR_CONTAINS(QuestionAnsweringTrainer(model, f.data, f.data, FreezePolicy{},
                                                 std::nullopt, options, f.qa, f.tokenizer),
                        "needs an adapter to train");
  SquadDataset unanswered = f.data;
  unanswered.examples[0].answers.clear();
  EXPECT_ERROR_CONTAINS(QuestionAnsweringTrainer(model, unanswered, f.data, FreezePolicy{}, "squad",
                                                 options, f.qa, f.tokenizer),
                        "question \"q1\" has no answer and is not marked is_impossible");
}

}  // namespace
}  // namespace adaptertune
