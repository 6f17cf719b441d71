#include "adaptertune/inference/predictor.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/layers/linear.h"
#include "adaptertune/parameter_names.h"
#include "adaptertune/text/wordpiece.h"
#include "adaptertune/training/question_answering_trainer.h"
#include "adaptertune/version.h"
#include "group_test_util.h"
#include "onednn_products.h"
#include "test_util.h"

namespace adaptertune {
namespace {

const std::string kData = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";

class PredictorTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(PredictorTest);

// A model directory (tiny base, the BERT vocabulary) and three packs trained on it (2 labels,
// 3 labels, regression), written once for the suite.
struct Files {
  std::string root, model;
  std::vector<std::string> packs;
};

const Files& files() {
  static const Files f = [] {
    Files out;
    out.root = ::testing::TempDir() + "adaptertune_predictor_" + std::to_string(::getpid());
    remove_tree(out.root);
    out.model = out.root + "/base";
    torch::manual_seed(31);
    BertConfig config = testing::tiny_config();
    config.vocab_size = 30522;
    BertForSequenceClassification model(config, HeadConfig::classification({"no", "yes"}));
    save_pretrained(*model, out.model);
    save_tokenizer(WordPieceTokenizer(kData + "/vocab/bert-base-uncased-vocab.txt"), out.model);
    struct Task {
      const char* name;
      AdapterConfig adapter;
      HeadConfig head;
      int64_t max_length;
    };
    const std::vector<Task> tasks = {
        {"sentiment", AdapterConfig::houlsby(), HeadConfig::classification({"neg", "pos"}), 16},
        {"nli", AdapterConfig::pfeiffer(),
         HeadConfig::classification({"entailment", "neutral", "contradiction"}), 24},
        {"similarity", AdapterConfig::houlsby(), HeadConfig::regression(), 0}};
    for (const Task& task : tasks) {
      model->add_task(task.name, task.adapter, task.head);
      model->bert->add_layer_norm_copies(task.name);
      torch::NoGradGuard no_grad;
      for (auto& item : model->named_parameters()) {
        if (parameter_task(item.key()) == task.name) {
          item.value().add_(torch::randn_like(item.value()) * 0.3);
        }
      }
      AdapterPackOptions options;
      options.max_length = task.max_length;
      out.packs.push_back(out.root + "/" + task.name);
      save_adapter_pack(model, task.name, out.packs.back(), options);
    }
    return out;
  }();
  return f;
}

std::vector<TaskRequest> mixed_requests() {
  return {{"sentiment", "a gorgeous, witty, seductive movie.", std::nullopt},
          {"nli", "A man is playing a guitar.", std::string("Nobody plays anything.")},
          {std::nullopt, "no task: the plain base", std::nullopt},
          {"similarity", "A cat sits on the mat.", std::string("A cat is sitting on a mat.")},
          {"sentiment",
           "the plot is nowhere near as clever as it thinks it is, and the "
           "dialogue is worse than that",
           std::nullopt},
          {"nli", "Two dogs run.", std::string("Animals are moving.")},
          {"similarity", "short", std::string("a much longer second sentence than the first")}};
}

void expect_same(const Prediction& a, const Prediction& b, double tolerance,
                 const std::string& what) {
  EXPECT_EQ(a.task, b.task) << what;
  EXPECT_EQ(a.label, b.label) << what;
  ASSERT_EQ(a.logits.size(), b.logits.size()) << what;
  for (size_t i = 0; i < a.logits.size(); ++i) {
    EXPECT_NEAR(a.logits[i], b.logits[i], tolerance) << what << " logit " << i;
  }
}

TEST_P(PredictorTest, MixedRequestsGetWhatEachTaskGivesThemAlone) {
  PredictorOptions options;
  options.device = device();
  options.batch_size = 3;  // several batches, each mixing tasks
  Predictor predictor(files().model, files().packs, options);
  EXPECT_EQ(predictor.tasks(), (std::vector<std::string>{"sentiment", "nli", "similarity"}));
  EXPECT_TRUE(predictor.warnings().empty()) << predictor.warnings().front();
  // The whole, as GET /v1/model and inspect describe it: the base, the tasks, the version.
  const auto described = nlohmann::json::parse(predictor.describe());
  EXPECT_EQ(described.at("tasks"), nlohmann::json(predictor.tasks()));
  EXPECT_EQ(described.at("library_version"), version());
  EXPECT_EQ(described.at("config_sha256"), predictor.base_info().config_sha256);
  EXPECT_EQ(predictor.max_length("sentiment"), 16);  // recorded in the pack
  // Not recorded: the default, 128, but never beyond the model's 64 positions.
  EXPECT_EQ(predictor.max_length("similarity"), 64);
  const auto requests = mixed_requests();
  const std::vector<Prediction> mixed = predictor.predict(requests);
  ASSERT_EQ(mixed.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto alone =
        predictor.predict(requests[i].task, {TextInput{requests[i].text, requests[i].text_pair}});
    expect_same(mixed[i], alone.at(0), 1e-5, "request " + std::to_string(i));
  }
  EXPECT_EQ(mixed[0].task, "sentiment");
  EXPECT_EQ(mixed[1].probabilities.size(), 3u);
  EXPECT_EQ(mixed[1].probabilities[2].first, "contradiction");
  EXPECT_TRUE(mixed[3].score.has_value());
  EXPECT_FALSE(mixed[3].label.has_value());
  EXPECT_EQ(mixed[2].task, std::nullopt);
  EXPECT_EQ(mixed[2].probabilities.size(), 2u);  // the model directory's head: no, yes
  double sum = 0;
  for (const auto& [label, p] : mixed[1].probabilities) sum += p;
  EXPECT_NEAR(sum, 1.0, 1e-9);
}

// What each of `threads` threads got calling predict(requests) three times at once: every
// call's predictions, or the error it met.
struct ThreadedCalls {
  std::vector<std::vector<std::vector<Prediction>>> results;  // by thread, then call
  std::vector<std::string> errors;                            // by thread; empty: none
};

ThreadedCalls predict_in_threads(const Predictor& predictor,
                                 const std::vector<TaskRequest>& requests, size_t threads) {
  ThreadedCalls calls;
  calls.results.resize(threads);
  calls.errors.resize(threads);
  std::vector<std::thread> running;
  for (size_t t = 0; t < threads; ++t) {
    running.emplace_back([&, t] {
      try {
        for (int repeat = 0; repeat < 3; ++repeat) {
          calls.results[t].push_back(predictor.predict(requests));
        }
      } catch (const std::exception& e) {
        calls.errors[t] = e.what();
      }
    });
  }
  for (auto& thread : running) thread.join();
  return calls;
}

TEST_P(PredictorTest, ThreadsCallingTogetherGetTheSerialResults) {
  PredictorOptions options;
  options.device = device();
  options.batch_size = 4;
  const Predictor predictor(files().model, files().packs, options);
  const auto requests = mixed_requests();
  const std::vector<Prediction> serial = predictor.predict(requests);
  const ThreadedCalls calls = predict_in_threads(predictor, requests, 8);
  for (size_t t = 0; t < calls.errors.size(); ++t) {
    ASSERT_EQ(calls.errors[t], "") << "thread " << t;
    ASSERT_EQ(calls.results[t].size(), 3u) << "thread " << t;
    for (const std::vector<Prediction>& got : calls.results[t]) {
      ASSERT_EQ(got.size(), serial.size());
      for (size_t i = 0; i < serial.size(); ++i) {
        expect_same(got[i], serial[i], 1e-6,
                    "thread " + std::to_string(t) + " request " + std::to_string(i));
      }
    }
  }
}

// Each member of a group of two (threads here; `name` tells groups apart) gets every prediction
// of `requests` as one process alone computes it.
void expect_group_gives_what_one_process_gives(const Predictor& predictor,
                                               const std::vector<TaskRequest>& requests,
                                               const std::string& name) {
  const std::vector<Prediction> alone = predictor.predict(requests);
  std::vector<Prediction> got[2];
  testing::in_group_of_two(
      name, [&](ProcessGroup& group) { got[group.rank()] = predictor.predict(requests, &group); });
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_EQ(got[rank].size(), alone.size()) << "rank " << rank;
    for (size_t i = 0; i < alone.size(); ++i) {
      EXPECT_EQ(got[rank][i].to_json(), alone[i].to_json()) << "rank " << rank << " request " << i;
    }
  }
}

// Shared out over a group of two (threads here, processes in tests/distributed/): each member
// computes every other batch, and both get every prediction as one process computes it, whatever
// the widths of the heads the rows of a batch go to (2, 3 and 1 logits here).
TEST(Predictor, SharedOutInAGroupOfTwoGivesWhatOneProcessGives) {
  PredictorOptions options;
  options.batch_size = 2;
  const Predictor predictor(files().model, files().packs, options);
  std::vector<TaskRequest> requests = mixed_requests();
  const std::vector<TaskRequest> more = mixed_requests();
  requests.insert(requests.end(), more.begin(), more.end());  // 7 batches: 4 on rank 0, 3 on 1
  expect_group_gives_what_one_process_gives(predictor, requests, "predictor_group");
  // No requests: every member returns at once, none waiting on a collective.
  testing::in_group_of_two("predictor_group_empty", [&](ProcessGroup& group) {
    EXPECT_TRUE(predictor.predict({}, &group).empty());
  });
}

TEST(Predictor, ErrorsNameTheRequestAndThePack) {
  const Predictor predictor(files().model, files().packs);
  EXPECT_ERROR_CONTAINS(
      predictor.predict({{"sentiment", "fine", std::nullopt}, {"sentimnt", "typo", std::nullopt}}),
      "request 1: no adapter named \"sentimnt\"");
  EXPECT_ERROR_CONTAINS(predictor.predict(std::string("nope"), {TextInput{"x", std::nullopt}}),
                        "no adapter named \"nope\"");
  EXPECT_TRUE(predictor.predict(std::vector<TaskRequest>{}).empty());
  EXPECT_ERROR_CONTAINS(Predictor(files().model, {files().packs[0], files().packs[0]}),
                        "adapter \"sentiment\" already exists");
  EXPECT_ERROR_CONTAINS(Predictor(files().model, {files().root + "/missing"}),
                        "missing: no such directory, where an adapter pack was expected");
  PredictorOptions fp16;
  fp16.precision = Precision::kFloat16;
  EXPECT_ERROR_CONTAINS(Predictor(files().model, files().packs, fp16),
                        "precision fp16 is not supported on the CPU");
}

// Two span packs (question answering) trained on the test base, each recording its windows and
// answers: "squad" 48-token windows, stride 16, "squad_lite" 64-token windows, stride 32.
struct SpanPacks {
  std::vector<std::string> packs;
  QuestionAnsweringOptions recorded, recorded_lite;
};

const SpanPacks& span_packs() {
  static const SpanPacks s = [] {
    SpanPacks out;
    out.recorded.features.max_length = 48;
    out.recorded.features.doc_stride = 16;
    out.recorded.features.max_query_length = 12;
    out.recorded.answers.n_best = 5;
    out.recorded.answers.max_answer_length = 6;
    out.recorded_lite.features.max_length = 64;
    out.recorded_lite.features.doc_stride = 32;
    out.recorded_lite.features.max_query_length = 16;
    files();  // written first, so that the packs' weights are the same whichever test asks first
    torch::manual_seed(47);
    for (const char* name : {"squad", "squad_lite"}) {
      BertForQuestionAnswering model = load_bert_for_question_answering(files().model);
      const bool lite = std::string(name) == "squad_lite";
      model->bert->add_adapter(name, lite ? AdapterConfig::pfeiffer() : AdapterConfig::houlsby());
      if (!lite) model->bert->add_layer_norm_copies(name);
      torch::NoGradGuard no_grad;
      for (auto& item : model->named_parameters()) {
        if (parameter_task(item.key()) == name || item.key().rfind("qa_outputs.", 0) == 0) {
          item.value().add_(torch::randn_like(item.value()) * 0.5);
        }
      }
      AdapterPackOptions options;
      options.question_answering = lite ? out.recorded_lite : out.recorded;
      options.max_length = options.question_answering->features.max_length;
      out.packs.push_back(files().root + "/" + name);
      save_adapter_pack(model, name, out.packs.back(), options);
    }
    return out;
  }();
  return s;
}

const std::string kContext =
    "The Normans were the people who in the 10th and 11th centuries gave their name to "
    "Normandy, a region in France. They were descended from Norse raiders and pirates from "
    "Denmark, Iceland and Norway who, under their leader Rollo, agreed to swear fealty to King "
    "Charles III of West Francia.";

// What predict_squad() answers with `pack` loaded into a span model of the test base (for a
// question of a SQuAD v2.0 data set when `v2`): the reference a Predictor's span task must give.
// `below`: packs whose adapters the pack needs (a fusion's), loaded first without their heads.
SquadAnswerPrediction squad_reference(const std::string& pack, const std::string& question,
                                      const std::string& context,
                                      const QuestionAnsweringOptions& options, c10::Device device,
                                      Precision precision = Precision::kFloat32, bool v2 = false,
                                      const std::vector<std::string>& below = {}) {
  BertForQuestionAnswering model = load_bert_for_question_answering(files().model);
  for (const std::string& other : below) {
    load_adapter_pack(model, other, std::nullopt, /*load_head=*/false);
  }
  load_adapter_pack(model, pack);
  SquadDataset data;
  data.v2 = v2;
  data.examples.push_back({"q", "", question, context, {}, false});
  const auto tokenizer = load_tokenizer(files().model);
  return predict_squad(model, data, *tokenizer, options, 4, device, precision).at("q");
}

// Span tasks share the base with the classification tasks: mixed in one call, each question is
// answered as predict_squad() answers it with its pack alone (windows and answers as the pack
// records, else the defaults), and each classification request as before.
TEST_P(PredictorTest, SpanTasksAnswerAsPredictSquadDoes) {
  PredictorOptions options;
  options.device = device();
  options.batch_size = 3;
  std::vector<std::string> packs = files().packs;
  packs.insert(packs.end(), span_packs().packs.begin(), span_packs().packs.end());
  Predictor predictor(files().model, packs, options);
  EXPECT_TRUE(predictor.warnings().empty()) << predictor.warnings().front();
  const TaskInfo squad = predictor.task_info("squad");
  EXPECT_TRUE(squad.span_head);
  EXPECT_TRUE(squad.base_matches);
  EXPECT_EQ(squad.max_length, 48);
  ASSERT_TRUE(squad.question_answering.has_value());
  EXPECT_EQ(squad.question_answering->features.doc_stride, 16);
  EXPECT_EQ(squad.question_answering->answers.max_answer_length, 6);
  EXPECT_FALSE(predictor.task_info("sentiment").question_answering.has_value());
  EXPECT_EQ(predictor.task_info("squad_lite").max_length, 64);
  EXPECT_FALSE(predictor.task_info("sentiment").span_head);
  EXPECT_ERROR_CONTAINS(predictor.head(std::string("squad")),
                        "task squad has a span head (question answering)");
  std::vector<TaskRequest> requests = mixed_requests();
  const std::vector<std::pair<std::string, std::string>> questions = {
      {"squad", "Who was the leader of the Norse raiders?"},
      {"squad_lite", "Where is Normandy?"},
      {"squad", "In which centuries did the Normans name Normandy?"}};
  for (const auto& [task, question] : questions) requests.push_back({task, question, kContext});
  const std::vector<Prediction> mixed = predictor.predict(requests);
  ASSERT_EQ(mixed.size(), requests.size());
  const size_t first_span = mixed_requests().size();
  for (size_t i = 0; i < first_span; ++i) {
    const auto alone =
        predictor.predict(requests[i].task, {TextInput{requests[i].text, requests[i].text_pair}});
    expect_same(mixed[i], alone.at(0), 1e-5, "request " + std::to_string(i));
    EXPECT_FALSE(mixed[i].answer.has_value());
  }
  int spans = 0;  // answers that are not empty (none when no valid span is among the n best)
  for (size_t q = 0; q < questions.size(); ++q) {
    const Prediction& got = mixed[first_span + q];
    const std::string& task = questions[q].first;
    const SquadAnswerPrediction expected = squad_reference(
        files().root + "/" + task, questions[q].second, kContext,
        task == "squad" ? span_packs().recorded : span_packs().recorded_lite, device());
    EXPECT_EQ(got.task, task);
    ASSERT_TRUE(got.answer.has_value()) << q;
    EXPECT_EQ(*got.answer, expected.text) << q;
    spans += !got.answer->empty();
    EXPECT_NE(kContext.find(*got.answer), std::string::npos) << *got.answer;
    EXPECT_NEAR(*got.score, expected.score, 1e-4) << q;
    EXPECT_NEAR(*got.null_score, expected.null_score, 1e-4) << q;
    EXPECT_TRUE(got.logits.empty());
  }
  EXPECT_GE(spans, 1);
  const std::string json = mixed[first_span].to_json();
  EXPECT_EQ(json.rfind("{\"task\":\"squad\",\"answer\":", 0), 0u) << json;
  EXPECT_NE(json.find(",\"null_score\":"), std::string::npos) << json;
  // A span task's own bytes: its adapters, LayerNorm copies and span head.
  int64_t adapter_bytes = 0;
  {
    BertForQuestionAnswering model = load_bert_for_question_answering(files().model);
    load_adapter_pack(model, span_packs().packs[0]);
    for (const auto& item : model->named_parameters()) {
      if (parameter_task(item.key()) == "squad") adapter_bytes += item.value().numel() * 4;
    }
  }
  const int64_t hidden = testing::tiny_config().hidden_size;
  EXPECT_EQ(predictor.task_bytes("squad"), adapter_bytes + 2 * (hidden + 1) * 4);
}

// PredictorOptions::span_overrides replace what the span packs record, each where given: the
// answers are predict_squad()'s with those windows and answer options, task_info() says them,
// and windows they leave no room in are refused naming the pack.
TEST(Predictor, SpanOverridesReplaceWhatThePacksRecord) {
  PredictorOptions options;
  options.span_overrides.doc_stride = 8;
  options.span_overrides.n_best = 3;
  options.span_overrides.max_answer_length = 1;
  const Predictor predictor(files().model, span_packs().packs, options);
  const std::vector<std::string> questions = {"Who was the leader of the Norse raiders?",
                                              "In which centuries did the Normans name Normandy?"};
  std::vector<TaskRequest> requests;
  for (const char* task : {"squad", "squad_lite"}) {
    for (const std::string& question : questions) requests.push_back({task, question, kContext});
  }
  const std::vector<Prediction> got = predictor.predict(requests);
  ASSERT_EQ(got.size(), requests.size());
  bool differs = false;  // from the answers with what the packs record
  for (size_t i = 0; i < requests.size(); ++i) {
    const bool lite = *requests[i].task == "squad_lite";
    const QuestionAnsweringOptions recorded =
        lite ? span_packs().recorded_lite : span_packs().recorded;
    const QuestionAnsweringOptions used = options.span_overrides.applied_to(recorded);
    EXPECT_EQ(used.features.max_length, recorded.features.max_length);
    EXPECT_EQ(used.features.query_length(), recorded.features.query_length());
    EXPECT_EQ(used.features.stride(), 8);
    const std::string pack = files().root + "/" + *requests[i].task;
    const SquadAnswerPrediction expected =
        squad_reference(pack, requests[i].text, kContext, used, c10::Device(c10::kCPU));
    ASSERT_TRUE(got[i].answer.has_value());
    EXPECT_EQ(*got[i].answer, expected.text) << i;
    EXPECT_NEAR(*got[i].score, expected.score, 1e-4) << i;
    const SquadAnswerPrediction as_recorded =
        squad_reference(pack, requests[i].text, kContext, recorded, c10::Device(c10::kCPU));
    differs |= as_recorded.text != expected.text || as_recorded.score != expected.score;
  }
  EXPECT_TRUE(differs) << "the overrides changed no answer";
  const QuestionAnsweringOptions shown = *predictor.task_info("squad").question_answering;
  EXPECT_EQ(shown.features.doc_stride, 8);
  EXPECT_EQ(shown.answers.n_best, 3);
  EXPECT_EQ(shown.answers.max_answer_length, 1);
  EXPECT_DOUBLE_EQ(shown.answers.null_score_threshold,
                   span_packs().recorded.answers.null_score_threshold);

  PredictorOptions no_room;
  no_room.span_overrides.max_query_length = 45;  // of squad's 48-token windows
  EXPECT_ERROR_CONTAINS(Predictor(files().model, span_packs().packs, no_room),
                        "/squad: its windows of 48 tokens: ");
}

// AdapterFusion's span task (a fusion of two classification packs' adapters with its own span
// head) answers beside those packs' classification tasks as predict_squad() answers with the
// fusion loaded on the adapters it fuses; the adapters it fuses cannot go while it is there.
TEST_P(PredictorTest, SpanTasksOfAFusionAnswerAsPredictSquadDoes) {
  const std::vector<std::string> fused = {files().packs[0], files().packs[2]};
  const std::string pack = files().root + "/squad_fusion";
  {
    BertForQuestionAnswering model = load_bert_for_question_answering(files().model);
    for (const std::string& other : fused) {
      load_adapter_pack(model, other, std::nullopt, /*load_head=*/false);
    }
    torch::manual_seed(53);
    model->bert->add_fusion({"sentiment", "similarity"});
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (is_fusion_parameter(item.key()) || item.key().rfind("qa_outputs.", 0) == 0) {
        item.value().add_(torch::randn_like(item.value()) * 0.5);
      }
    }
    AdapterPackOptions options;
    options.question_answering = span_packs().recorded;
    options.max_length = span_packs().recorded.features.max_length;
    save_adapter_pack(model, "sentiment,similarity", pack, options);
  }
  PredictorOptions options;
  options.device = device();
  std::vector<std::string> packs = {pack};  // before the packs it fuses: loaded after them
  packs.insert(packs.end(), files().packs.begin(), files().packs.end());
  Predictor predictor(files().model, packs, options);
  EXPECT_TRUE(predictor.warnings().empty()) << predictor.warnings().front();
  const TaskInfo fusion = predictor.task_info("sentiment,similarity");
  EXPECT_TRUE(fusion.span_head);
  EXPECT_TRUE(fusion.base_matches);
  std::vector<TaskRequest> requests = mixed_requests();
  const std::vector<std::string> questions = {"Who was the leader of the Norse raiders?",
                                              "Where is Normandy?"};
  for (const auto& question : questions) {
    requests.push_back({"sentiment,similarity", question, kContext});
  }
  const std::vector<Prediction> got = predictor.predict(requests);
  ASSERT_EQ(got.size(), requests.size());
  for (size_t q = 0; q < questions.size(); ++q) {
    const Prediction& answer = got[mixed_requests().size() + q];
    const SquadAnswerPrediction expected =
        squad_reference(pack, questions[q], kContext, span_packs().recorded, device(),
                        Precision::kFloat32, /*v2=*/false, fused);
    EXPECT_EQ(answer.task, "sentiment,similarity");
    ASSERT_TRUE(answer.answer.has_value()) << q;
    EXPECT_EQ(*answer.answer, expected.text) << q;
    EXPECT_NEAR(*answer.score, expected.score, 1e-4) << q;
    EXPECT_NEAR(*answer.null_score, expected.null_score, 1e-4) << q;
  }
  // The classification requests are answered as without the fusion.
  const std::vector<Prediction> without =
      Predictor(files().model, files().packs, options).predict(mixed_requests());
  for (size_t i = 0; i < without.size(); ++i) {
    expect_same(got[i], without[i], 1e-5, "request " + std::to_string(i));
  }
  EXPECT_ERROR_CONTAINS(predictor.remove_task("similarity"), "sentiment,similarity");
  predictor.remove_task("sentiment,similarity");
  predictor.remove_task("similarity");
  EXPECT_ERROR_CONTAINS(Predictor(files().model, {pack, files().packs[0]}, options),
                        "needs the adapters it fuses; similarity not loaded");
}

TEST(Predictor, SpanTasksRefuseAQuestionWithoutAContextAndUnload) {
  std::vector<std::string> packs = {files().packs[0], span_packs().packs[0]};
  Predictor predictor(files().model, packs);
  EXPECT_ERROR_CONTAINS(
      predictor.predict({{"sentiment", "fine", std::nullopt}, {"squad", "Who?", std::nullopt}}),
      "request 1: task squad answers questions from a context (a span head): give the question "
      "as \"text\" and the context as \"text_pair\"");
  const std::vector<TaskRequest> request = {{"squad", "Where is Normandy?", kContext}};
  const std::string before = predictor.predict(request).at(0).to_json();
  predictor.remove_task("squad");
  EXPECT_EQ(predictor.tasks(), std::vector<std::string>{"sentiment"});
  EXPECT_ERROR_CONTAINS(predictor.predict(request), "request 0: no adapter named \"squad\"");
  // Loaded again, under another name, it answers as before.
  EXPECT_EQ(predictor.add_task(span_packs().packs[0], std::string("qa")), "qa");
  const std::vector<TaskRequest> renamed = {{"qa", "Where is Normandy?", kContext}};
  std::string after = predictor.predict(renamed).at(0).to_json();
  after.replace(after.find("\"qa\""), 4, "\"squad\"");
  EXPECT_EQ(after, before);
  // An empty context has no span to give: the answer is empty, as predict_squad()'s is.
  const std::vector<TaskRequest> empty = {{"qa", "Where?", std::string()}};
  EXPECT_EQ(predictor.predict(empty).at(0).answer,
            squad_reference(span_packs().packs[0], "Where?", "", span_packs().recorded,
                            c10::Device(c10::kCPU))
                .text);
  // Windows the base cannot hold are refused when the pack loads, naming it. A pack that records
  // nothing gets windows of all the base's 64 positions (fewer than SQuAD's 384) with the
  // defaults for that length: questions of up to 32 tokens (SQuAD's 64 would leave no room), a
  // stride of 21.
  const std::string bare = files().root + "/squad_bare";
  const std::string too_long = files().root + "/squad_too_long";
  {
    BertForQuestionAnswering model = load_bert_for_question_answering(files().model);
    model->bert->add_adapter("squad_bare", AdapterConfig::houlsby());
    save_adapter_pack(model, "squad_bare", bare);
    AdapterPackOptions longer;  // as if trained on a base of more positions
    longer.max_length = 100;
    longer.question_answering = span_packs().recorded;
    longer.question_answering->features.max_length = 100;
    save_adapter_pack(model, "squad_bare", too_long, longer);
  }
  {
    const Predictor alone(files().model, {bare});
    const QuestionAnsweringOptions qa = *alone.task_info("squad_bare").question_answering;
    EXPECT_EQ(qa.features.max_length, 64);
    EXPECT_EQ(qa.features.query_length(), 32);
    EXPECT_EQ(qa.features.stride(), 21);
  }
  EXPECT_ERROR_CONTAINS(Predictor(files().model, {too_long}),
                        too_long +
                            ": max_length 100 is more than the model's "
                            "max_position_embeddings (64)");
  // Windows of another length than the recorded 48 take that length's defaults, not the
  // recorded 12-token questions and stride 16 (which leave windows of 15 no room for context).
  PredictorOptions shorter;
  shorter.max_length = 15;
  {
    const Predictor short_windows(files().model, {span_packs().packs[0]}, shorter);
    const QuestionAnsweringOptions qa = *short_windows.task_info("squad").question_answering;
    EXPECT_EQ(qa.features.query_length(), 7);
    EXPECT_EQ(qa.features.stride(), 5);
  }
  shorter.max_length = 6;  // a question of 3 tokens and 3 special tokens: no room left
  EXPECT_ERROR_CONTAINS(Predictor(files().model, {span_packs().packs[0]}, shorter),
                        span_packs().packs[0] + ": its windows of 6 tokens: ");
  EXPECT_EQ(predictor.add_task(bare), "squad_bare");
  EXPECT_EQ(predictor.tasks(), (std::vector<std::string>{"sentiment", "qa", "squad_bare"}));
}

// A pack that records allow_no_answer (its run evaluated on SQuAD v2.0) answers nothing where
// predict_squad() does for a v2.0 data set: when the score of no answer beats the best span's by
// more than the recorded threshold. A pack without it gives the best span whatever the scores.
TEST_P(PredictorTest, SpanTasksAnswerNothingWhereTheirPackAllowsIt) {
  PredictorOptions options;
  options.device = device();
  Predictor predictor(files().model, {span_packs().packs[0]}, options);
  EXPECT_FALSE(predictor.task_info("squad").question_answering->answers.allow_no_answer);
  const std::vector<std::string> questions = {
      "Who was the leader of the Norse raiders?", "Where is Normandy?",
      "What did the Normans give Normandy?",      "Who was the king of West Francia?",
      "Where did the raiders come from?",         "What did they agree to?"};
  std::vector<TaskRequest> requests;
  for (const std::string& question : questions) requests.push_back({"squad", question, kContext});
  const std::vector<Prediction> spans = predictor.predict(requests);
  // A threshold that the margin of no answer passes for some questions and not for others.
  std::vector<double> margins;
  for (size_t q = 0; q < questions.size(); ++q) {
    ASSERT_FALSE(spans[q].answer->empty()) << "the test wants a valid span: " << questions[q];
    margins.push_back(*spans[q].null_score - *spans[q].score);
  }
  std::vector<double> sorted = margins;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_LT(sorted[2], sorted[3]);
  const double threshold = (sorted[2] + sorted[3]) / 2;
  // The same adapter and head, saved as a run on v2.0 data saves them.
  QuestionAnsweringOptions recorded = span_packs().recorded;
  recorded.answers.allow_no_answer = true;
  recorded.answers.null_score_threshold = threshold;
  const std::string v2_pack = files().root + "/squad_v2";
  {
    BertForQuestionAnswering model = load_bert_for_question_answering(files().model);
    load_adapter_pack(model, span_packs().packs[0]);
    AdapterPackOptions pack;
    pack.max_length = recorded.features.max_length;
    pack.question_answering = recorded;
    save_adapter_pack(model, "squad", v2_pack, pack);
  }
  EXPECT_EQ(predictor.add_task(v2_pack, std::string("squad_v2")), "squad_v2");
  const TaskInfo info = predictor.task_info("squad_v2");
  EXPECT_TRUE(info.question_answering->answers.allow_no_answer);
  EXPECT_EQ(info.question_answering->answers.null_score_threshold, threshold);
  for (TaskRequest& request : requests) request.task = "squad_v2";
  const std::vector<Prediction> got = predictor.predict(requests);
  for (size_t q = 0; q < questions.size(); ++q) {
    SCOPED_TRACE(questions[q]);
    const SquadAnswerPrediction expected =
        squad_reference(v2_pack, questions[q], kContext, recorded, device(), Precision::kFloat32,
                        /*v2=*/true);
    EXPECT_EQ(*got[q].answer, expected.text);
    EXPECT_EQ(*got[q].answer, margins[q] > threshold ? "" : *spans[q].answer);
    EXPECT_NEAR(*got[q].score, *spans[q].score, 1e-5);  // the best span's, answered or not
    EXPECT_NEAR(*got[q].null_score, *spans[q].null_score, 1e-5);
  }
  EXPECT_EQ(
      std::count_if(got.begin(), got.end(), [](const Prediction& p) { return p.answer->empty(); }),
      3);
}

// A span model directory (a fully fine-tuned BertForQuestionAnswering, here of 128 positions)
// answers the requests that name no task as questions, as predict_squad() answers them with the
// directory alone (SQuAD's windows, cut to its 128 positions), beside a classification pack's
// task; a question without its context, and its head as a classifier's, are refused.
TEST(Predictor, ASpanModelDirectoryAnswersQuestionsThatNameNoTask) {
  const std::string dir = files().root + "/span_model";
  {
    torch::manual_seed(53);
    BertConfig config = testing::tiny_config();
    config.vocab_size = 30522;
    config.max_position_embeddings = 128;
    BertForQuestionAnswering model(config);
    save_pretrained(*model, dir);
    save_tokenizer(WordPieceTokenizer(kData + "/vocab/bert-base-uncased-vocab.txt"), dir);
  }
  const std::string pack = files().root + "/span_model_sentiment";
  {
    BertForSequenceClassification model = load_bert_for_sequence_classification(dir);
    model->add_task("sentiment", AdapterConfig::houlsby(), HeadConfig::classification({"n", "p"}));
    save_adapter_pack(model, "sentiment", pack);
  }
  const Predictor predictor(dir, {pack});
  EXPECT_TRUE(predictor.warnings().empty()) << predictor.warnings().front();
  EXPECT_EQ(predictor.max_length(std::nullopt), 128);
  const std::vector<std::string> questions = {"Who was the leader of the Norse raiders?",
                                              "Where is Normandy?"};
  std::vector<TaskRequest> requests = {{"sentiment", "fine", std::nullopt}};
  for (const std::string& question : questions) {
    requests.push_back({std::nullopt, question, kContext});
  }
  const std::vector<Prediction> got = predictor.predict(requests);
  EXPECT_TRUE(got[0].label.has_value());
  BertForQuestionAnswering alone = load_bert_for_question_answering(dir);
  SquadDataset data;
  for (size_t q = 0; q < questions.size(); ++q) {
    data.examples.push_back({std::to_string(q), "", questions[q], kContext, {}, false});
  }
  QuestionAnsweringOptions squad;
  squad.features.max_length = 128;
  const auto expected = predict_squad(alone, data, *load_tokenizer(dir), squad, 4,
                                      c10::Device(c10::kCPU), Precision::kFloat32);
  for (size_t q = 0; q < questions.size(); ++q) {
    const Prediction& answer = got[q + 1];
    EXPECT_FALSE(answer.task.has_value());
    ASSERT_TRUE(answer.answer.has_value()) << q;
    EXPECT_EQ(*answer.answer, expected.at(std::to_string(q)).text) << q;
    EXPECT_NEAR(*answer.score, expected.at(std::to_string(q)).score, 1e-4) << q;
  }
  EXPECT_ERROR_CONTAINS(predictor.predict({{std::nullopt, "Who?", std::nullopt}}),
                        "request 0: the model directory answers questions from a context (a "
                        "span head): give the question as \"text\" and the context as "
                        "\"text_pair\"");
  EXPECT_ERROR_CONTAINS(predictor.head(std::nullopt),
                        "the model directory's head is a span head (question answering)");
  const BaseInfo base = predictor.base_info();
  EXPECT_TRUE(base.span_head);
  EXPECT_TRUE(base.head_trained);
  ASSERT_TRUE(base.question_answering.has_value());
  EXPECT_EQ(base.question_answering->features.max_length, 128);  // all its positions
  EXPECT_EQ(base.question_answering->features.stride(), 42);     // a third of its 128
  EXPECT_EQ(base.question_answering->answers.n_best, 20);
  EXPECT_EQ(base.max_length, 128);
  EXPECT_EQ(base.config.max_position_embeddings, 128);
  PredictorOptions shorter;
  shorter.max_length = 96;  // its windows too
  const Predictor short_windows(dir, {}, shorter);
  EXPECT_EQ(short_windows.max_length(std::nullopt), 96);
  EXPECT_EQ(short_windows.base_info().question_answering->features.max_length, 96);
  // What the directory records (a full run's windows and answers), as a pack's record.
  QuestionAnsweringOptions recorded;
  recorded.features.max_length = 80;
  recorded.features.doc_stride = 32;
  recorded.answers.n_best = 7;
  write_model_directory_record(dir, {80, recorded, std::nullopt});
  const BaseInfo from_record = Predictor(dir, {}).base_info();
  EXPECT_EQ(from_record.max_length, 80);
  EXPECT_EQ(from_record.question_answering->features.doc_stride, 32);
  EXPECT_EQ(from_record.question_answering->answers.n_best, 7);
  EXPECT_EQ(Predictor(dir, {}, shorter).base_info().max_length, 96);  // the option first
  // The span head is part of the base's bytes: 2 x (hidden + 1) floats.
  const Predictor classifier_base(files().model, {});
  const int64_t hidden = testing::tiny_config().hidden_size;
  EXPECT_EQ(predictor.base_bytes() - classifier_base.base_bytes(),
            64 * hidden * 4 + 2 * (hidden + 1) * 4);  // 64 more positions; the span head
}

// Threads asking span and classification tasks at once get what a serial call gives.
TEST(Predictor, SpanTasksAnswerThreadsCallingTogetherAsOneCall) {
  PredictorOptions options;
  options.batch_size = 2;
  const Predictor predictor(files().model, {files().packs[0], span_packs().packs[0]}, options);
  const std::vector<TaskRequest> requests = {
      {"squad", "Who was the leader of the Norse raiders?", kContext},
      {"sentiment", "a gorgeous, witty movie", std::nullopt},
      {"squad", "Where is Normandy?", kContext + " " + kContext}};
  const std::vector<Prediction> serial = predictor.predict(requests);
  const ThreadedCalls calls = predict_in_threads(predictor, requests, 6);
  for (size_t t = 0; t < calls.errors.size(); ++t) {
    EXPECT_EQ(calls.errors[t], "") << "thread " << t;
    ASSERT_EQ(calls.results[t].size(), 3u) << "thread " << t;
    for (const std::vector<Prediction>& got : calls.results[t]) {
      ASSERT_EQ(got.size(), serial.size());
      for (size_t i = 0; i < serial.size(); ++i) {
        EXPECT_EQ(got[i].to_json(), serial[i].to_json()) << "thread " << t << " request " << i;
      }
    }
  }
}

// In bf16 the base's Linear weights are stored in bf16 (and prepacked); a span task still answers
// as predict_squad() under autocast does.
TEST(Predictor, SpanTasksInBf16AnswerAsPredictSquadInBf16) {
  PredictorOptions options;
  options.precision = Precision::kBFloat16;
  const Predictor predictor(files().model, {files().packs[0], span_packs().packs[0]}, options);
  EXPECT_TRUE(predictor.warnings().empty()) << predictor.warnings().front();
  for (const std::string question : {"Who was the leader of the Norse raiders?", "Where?"}) {
    const Prediction got = predictor.predict({{"squad", question, kContext}}).at(0);
    const SquadAnswerPrediction expected =
        squad_reference(span_packs().packs[0], question, kContext, span_packs().recorded,
                        c10::Device(c10::kCPU), Precision::kBFloat16);
    EXPECT_EQ(got.answer, expected.text) << question;
    EXPECT_NEAR(*got.score, expected.score, 1e-3) << question;
  }
}

// In a group of two, span questions are shared out by their windows' batches (two windows a
// batch here) and gathered, and every member gets every answer as one process finds it.
TEST(Predictor, SpanTasksSharedOutInAGroupOfTwoGiveWhatOneProcessGives) {
  PredictorOptions options;
  options.batch_size = 2;
  const Predictor predictor(files().model, {files().packs[2], span_packs().packs[0]}, options);
  const std::vector<TaskRequest> requests = {
      {"squad", "Who was the leader of the Norse raiders?", kContext},
      {"similarity", "A cat sits.", std::string("A cat is sitting.")},
      {"squad", "Where is Normandy?", kContext},
      {"squad", "Who swore fealty?", kContext + " " + kContext}};
  expect_group_gives_what_one_process_gives(predictor, requests, "predictor_span_group");
}

TEST(Predictor, TasksLoadAndUnloadWhileOtherThreadsPredict) {
  Predictor predictor(files().model, {files().packs[0]});
  const std::vector<TaskRequest> requests = {{"sentiment", "fine work", std::nullopt},
                                             {std::nullopt, "the base", std::nullopt}};
  const std::vector<Prediction> expected = predictor.predict(requests);
  std::atomic<bool> done{false};
  std::vector<std::string> errors;
  std::mutex errors_mutex;
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!done) {
        try {
          const auto got = predictor.predict(requests);
          for (size_t i = 0; i < got.size(); ++i) {
            if (got[i].logits != expected[i].logits) throw Error("answer changed under a load");
          }
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(errors_mutex);
          errors.push_back(e.what());
        }
      }
    });
  }
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(predictor.add_task(files().packs[1], std::string("nli_" + std::to_string(round))),
              "nli_" + std::to_string(round));
    EXPECT_EQ(predictor.add_task(files().packs[2]), "similarity");
    EXPECT_TRUE(predictor.task_info("similarity").head.problem_type == ProblemType::kRegression);
    EXPECT_GT(predictor.task_bytes("similarity"), 0);
    predictor.remove_task("similarity");
  }
  done = true;
  for (auto& reader : readers) reader.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(predictor.tasks(), (std::vector<std::string>{"sentiment", "nli_0", "nli_1", "nli_2"}));
  EXPECT_FALSE(predictor.has_task("similarity"));
  EXPECT_ERROR_CONTAINS(predictor.remove_task("similarity"), "no adapter named \"similarity\"");
  EXPECT_ERROR_CONTAINS(predictor.add_task(files().packs[0]),
                        "adapter \"sentiment\" already exists");
  // A task loaded later answers as one loaded at construction.
  const Predictor fresh(files().model, {files().packs[1]});
  const auto late = predictor.predict({{"nli_2", "A man sleeps.", std::string("Someone rests.")}});
  const auto early = fresh.predict({{"nli", "A man sleeps.", std::string("Someone rests.")}});
  EXPECT_EQ(late.at(0).logits, early.at(0).logits);
  const TaskInfo info = predictor.task_info("nli_0");
  EXPECT_EQ(info.max_length, 24);
  EXPECT_TRUE(info.base_matches);
  EXPECT_NE(info.adapter_config_json.find("\"output_adapter\""), std::string::npos);
}

TEST(Predictor, Bf16StoresTheBaseInBf16AndStillKnowsItsPacks) {
  // With bf16 the Linear weights are stored in bf16: the base takes fewer bytes, the answers do
  // not change, and a pack added afterwards still matches the base it was trained on, although
  // hashing the weights as now stored would give another identity.
  PredictorOptions fp32_options, bf16_options;
  fp32_options.precision = Precision::kFloat32;
  bf16_options.precision = Precision::kBFloat16;
  const Predictor wide(files().model, {files().packs[0]}, fp32_options);
  Predictor narrow(files().model, {files().packs[0]}, bf16_options);
  EXPECT_TRUE(narrow.warnings().empty()) << narrow.warnings().front();
  EXPECT_EQ(narrow.add_task(files().packs[1]), "nli");
  EXPECT_TRUE(narrow.warnings().empty()) << narrow.warnings().front();
  EXPECT_TRUE(narrow.task_info("nli").base_matches);
  EXPECT_LT(narrow.task_bytes("nli"), wide.task_bytes("sentiment"));  // its Linears in bf16 too
  // The same answers as autocast over float32 weights, bit for bit: the pack loaded later too.
  Predictor reference(files().model, {files().packs[0], files().packs[1]}, bf16_options);
  const auto requests = mixed_requests();
  std::vector<TaskRequest> known;
  for (const auto& request : requests) {
    if (!request.task || *request.task != "similarity") known.push_back(request);
  }
  BertForSequenceClassification model = load_bert_for_sequence_classification(files().model);
  int64_t linear_weights = 0;  // elements of the base's Linear weights: 2 bytes each saved
  for (const auto& item : model->named_parameters()) {
    if (item.value().dim() == 2 && item.key().find("embeddings") == std::string::npos) {
      linear_weights += item.value().numel();
    }
  }
  EXPECT_GT(linear_weights, 0);
  EXPECT_EQ(wide.base_bytes() - narrow.base_bytes(), 2 * linear_weights);
  load_adapter_pack(model, files().packs[0]);
  load_adapter_pack(model, files().packs[1]);
  model->eval();
  const std::unique_ptr<Tokenizer> tokenizer = load_tokenizer(files().model);
  for (const auto& request : known) {
    const Prediction got = narrow.predict({request}).at(0);
    model->bert->set_active_adapter(request.task);  // its adapter and its head
    const int64_t length = narrow.max_length(request.task);
    const Encoding encoding = tokenizer->encode(request.text, request.text_pair, length);
    const torch::Tensor input_ids = torch::tensor(encoding.input_ids).unsqueeze(0);
    torch::Tensor logits;
    {
      c10::InferenceMode inference;
      AutocastGuard autocast(c10::kCPU, Precision::kBFloat16);
      logits = model(input_ids, torch::ones_like(input_ids),
                     torch::tensor(encoding.token_type_ids).unsqueeze(0));
    }
    logits = logits.to(torch::kFloat).reshape(-1);
    ASSERT_EQ(got.logits.size(), static_cast<size_t>(logits.numel())) << request.text;
    for (int64_t i = 0; i < logits.numel(); ++i) {
      EXPECT_EQ(got.logits[i], logits[i].item<float>()) << request.text << " logit " << i;
    }
  }
}

TEST(Predictor, Bf16PrepackedWeightsGiveTheSameAnswersAndFollowTheTasks) {
  // By default a bf16 Predictor keeps its weights prepacked for oneDNN's kernels
  // (PredictorOptions::prepack_frozen_weights): the same answers, bit for bit, as without; a
  // pack loaded later joins the cover, a removed task's copies go, and nothing outlives it.
  ASSERT_EQ(FrozenLinearWeightsPrepacked::copies(), 0);
  PredictorOptions packed_options, unpacked_options;
  packed_options.precision = unpacked_options.precision = Precision::kBFloat16;
  unpacked_options.prepack_frozen_weights = false;
  const torch::Tensor probe = torch::ones({2, 2}, torch::kBFloat16);
  const bool kernels = onednn_linear_applies(probe, probe, torch::Tensor());
  auto answers = [](const Predictor& predictor, const std::vector<TaskRequest>& requests) {
    std::vector<std::vector<float>> logits;
    for (const Prediction& p : predictor.predict(requests)) logits.push_back(p.logits);
    return logits;
  };
  std::vector<TaskRequest> sentiment, nli;
  for (const auto& request : mixed_requests()) {
    if (!request.task || *request.task == "sentiment") sentiment.push_back(request);
    if (request.task && *request.task == "nli") nli.push_back(request);
  }
  {
    Predictor packed(files().model, {files().packs[0]}, packed_options);
    const Predictor unpacked(files().model, {files().packs[0], files().packs[1]}, unpacked_options);
    EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 0) << "made at a weight's first product";
    EXPECT_EQ(answers(packed, sentiment), answers(unpacked, sentiment));
    const int64_t base_copies = FrozenLinearWeightsPrepacked::copies();
    if (kernels) {
      EXPECT_GE(base_copies, 4 * testing::tiny_config().num_hidden_layers)
          << "query, key and value as one block, the attention output, the two feed-forward "
             "weights";
    } else {
      EXPECT_EQ(base_copies, 0) << "no bf16 products on oneDNN here";
    }
    packed.add_task(files().packs[1]);
    EXPECT_EQ(answers(packed, nli), answers(unpacked, nli));
    EXPECT_EQ(answers(packed, sentiment), answers(unpacked, sentiment));
    if (kernels) {
      EXPECT_GT(FrozenLinearWeightsPrepacked::copies(), base_copies) << "nli's adapters";
    }
    packed.remove_task("nli");
    EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), base_copies) << "the base's copies kept";
    EXPECT_EQ(answers(packed, sentiment), answers(unpacked, sentiment));
  }
  EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 0);
}

TEST(Predictor, Float32PrepackedWeightsGiveTheAnswersUpToTheOrderOfSums) {
  // A float32 Predictor prepacks its weights too (PrepackedDtypes::kBFloat16AndFloat32), where
  // float32 products run on oneDNN: per-shape kernels in place of the run-time-sized ones, so
  // the same logits up to float32 rounding, and the copies go with the Predictor.
  ASSERT_EQ(FrozenLinearWeightsPrepacked::copies(), 0);
  PredictorOptions packed_options, unpacked_options;
  packed_options.precision = unpacked_options.precision = Precision::kFloat32;
  unpacked_options.prepack_frozen_weights = false;
  const bool kernels = onednn_built();  // float32 products on oneDNN wherever it is built in
  const std::vector<TaskRequest> requests = mixed_requests();
  {
    const Predictor packed(files().model, files().packs, packed_options);
    const Predictor unpacked(files().model, files().packs, unpacked_options);
    const std::vector<Prediction> got = packed.predict(requests);
    const std::vector<Prediction> expected = unpacked.predict(requests);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].logits.size(), expected[i].logits.size());
      for (size_t j = 0; j < got[i].logits.size(); ++j) {
        EXPECT_NEAR(got[i].logits[j], expected[i].logits[j],
                    1e-5 * (1 + std::abs(expected[i].logits[j])))
            << requests[i].text << " logit " << j;
      }
    }
    if (kernels) {
      EXPECT_GE(FrozenLinearWeightsPrepacked::copies(),
                4 * testing::tiny_config().num_hidden_layers)
          << "query, key and value as one block, the attention output, the two feed-forward "
             "weights";
    } else {
      EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 0) << "no float32 products on oneDNN here";
    }
  }
  EXPECT_EQ(FrozenLinearWeightsPrepacked::copies(), 0);
}

TEST(Predictor, AStackedPackRunsOnThePackBelowIt) {
  // A pack trained stacked on "sentiment", as Trainer saves one (TrainingTask::stacked_on).
  const std::string stacked = files().root + "/topic_on_sentiment";
  {
    BertForSequenceClassification model = load_bert_for_sequence_classification(files().model);
    load_adapter_pack(model, files().packs[0]);
    model->add_task("topic", AdapterConfig::houlsby(), HeadConfig::classification({"a", "b"}));
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (parameter_task(item.key()) == "topic") {
        item.value().add_(torch::randn_like(item.value()) * 0.3);
      }
    }
    AdapterPackOptions options;
    options.stacked_on = {"sentiment"};
    save_adapter_pack(model, "topic", stacked, options);
  }
  // Given before the pack below it, it loads after it all the same.
  Predictor predictor(files().model, {stacked, files().packs[0]});
  EXPECT_EQ(predictor.tasks(), (std::vector<std::string>{"sentiment", "topic"}));
  EXPECT_EQ(predictor.task_info("topic").stacked_on, std::vector<std::string>{"sentiment"});
  const std::string text = "a gorgeous, witty, seductive movie.";
  const std::vector<Prediction> got = predictor.predict(std::vector<TaskRequest>{
      {std::string("topic"), text, std::nullopt}, {std::string("sentiment"), text, std::nullopt}});

  BertForSequenceClassification model = load_bert_for_sequence_classification(files().model);
  load_adapter_pack(model, files().packs[0]);
  load_adapter_pack(model, stacked);
  model->eval();
  const Encoding encoding = load_tokenizer(files().model)->encode(text, std::nullopt, 64);
  const torch::Tensor input_ids = torch::tensor(encoding.input_ids).unsqueeze(0);
  auto logits = [&](const Stack& stack) {
    model->bert->set_active_stack(stack);
    c10::InferenceMode inference;
    return model(input_ids, torch::ones_like(input_ids),
                 torch::tensor(encoding.token_type_ids).unsqueeze(0))
        .reshape(-1);
  };
  auto expect_logits = [](const Prediction& prediction, const torch::Tensor& expected) {
    ASSERT_EQ(prediction.logits.size(), static_cast<size_t>(expected.numel()));
    for (int64_t i = 0; i < expected.numel(); ++i) {
      EXPECT_NEAR(prediction.logits[i], expected[i].item<float>(), 1e-5) << "logit " << i;
    }
  };
  expect_logits(got[0], logits(Stack{"sentiment", "topic"}));
  expect_logits(got[1], logits(Stack{"sentiment"}));
  EXPECT_FALSE(torch::allclose(logits(Stack{"topic"}), logits(Stack{"sentiment", "topic"})));

  EXPECT_ERROR_CONTAINS(predictor.remove_task("sentiment"),
                        "task sentiment has task topic stacked on it: remove topic first");
  EXPECT_TRUE(predictor.has_task("sentiment"));
  predictor.remove_task("topic");
  predictor.remove_task("sentiment");
  EXPECT_ERROR_CONTAINS(predictor.add_task(stacked),
                        "was trained stacked on other adapters (Stack(sentiment, topic)); "
                        "sentiment not loaded (load their adapter packs first)");
  EXPECT_TRUE(predictor.tasks().empty());
}

TEST(Predictor, WarnsWhenTheModelDirectoryHasNoHead) {
  // The shipped base was pretrained by masked LM: no classifier for requests without a task.
  const Predictor bare(std::string(ADAPTERTUNE_TEST_DATA_DIR) +
                       "/../../models/adaptertune-base-uncased-L4-H256");
  ASSERT_EQ(bare.warnings().size(), 1u);
  EXPECT_NE(bare.warnings()[0].find("no classifier weights"), std::string::npos);
  EXPECT_TRUE(bare.tasks().empty());
  EXPECT_FALSE(bare.base_info().head_trained);
  EXPECT_FALSE(bare.base_info().span_head);
  EXPECT_EQ(
      bare.predict(std::nullopt, {TextInput{"hello", std::nullopt}}).at(0).probabilities.size(),
      2u);
}

// What base_info() says is the model directory's: its config, the identity packs trained on it
// record, its head, and the length of requests that name no task; loading packs changes none of
// it.
TEST(Predictor, BaseInfoDescribesTheModelDirectory) {
  PredictorOptions options;
  options.max_length = 48;
  Predictor predictor(files().model, {files().packs[0]}, options);
  const BaseInfo base = predictor.base_info();
  EXPECT_EQ(base.model_directory, files().model);
  EXPECT_EQ(base.config, BertConfig::from_file(files().model + "/config.json"));
  const TaskInfo sentiment = predictor.task_info("sentiment");
  EXPECT_EQ(base.config_sha256, sentiment.base_config_sha256);  // what its pack records
  EXPECT_EQ(base.config_sha256.size(), 64u);
  EXPECT_FALSE(base.span_head);
  EXPECT_FALSE(base.question_answering.has_value());
  EXPECT_TRUE(base.head_trained);
  EXPECT_EQ(base.head, HeadConfig::classification({"no", "yes"}));
  EXPECT_EQ(base.max_length, 48);
  EXPECT_EQ(predictor.max_length(std::nullopt), 48);
  predictor.add_task(files().packs[1]);
  predictor.remove_task("sentiment");
  const BaseInfo after = predictor.base_info();
  EXPECT_EQ(after.head, base.head);
  EXPECT_EQ(after.config_sha256, base.config_sha256);
  EXPECT_EQ(after.max_length, 48);
  EXPECT_EQ(predictor.task_info("nli").bytes, predictor.task_bytes("nli"));
  EXPECT_GT(predictor.task_info("nli").bytes, 0);
  EXPECT_EQ(after.bytes, predictor.base_bytes());
  EXPECT_EQ(after.precision, Precision::kFloat32);
  EXPECT_EQ(after.device, c10::Device(c10::kCPU));
  // As GET /v1/model and GET /v1/tasks give them.
  const auto base_json = nlohmann::json::parse(after.to_json());
  EXPECT_EQ(base_json["model"], "base");  // the directory's name, not its path
  EXPECT_EQ(base_json["config"]["hidden_size"], base.config.hidden_size);
  EXPECT_FALSE(base_json["config"].contains("architectures"));
  EXPECT_EQ(base_json["config_sha256"], base.config_sha256);
  EXPECT_EQ(base_json["precision"], "fp32");
  EXPECT_EQ(base_json["device"], "cpu");
  EXPECT_EQ(base_json["bytes"], predictor.base_bytes());
  EXPECT_EQ(base_json["no_task"],
            nlohmann::json::parse(R"({"problem_type": "single_label_classification",
                "question_answering": null, "labels": ["no", "yes"], "max_length": 48,
                "trained": true})"));
  const auto task_json = nlohmann::json::parse(predictor.task_info("nli").to_json());
  EXPECT_EQ(task_json["name"], "nli");
  EXPECT_EQ(task_json["problem_type"], "single_label_classification");
  EXPECT_EQ(task_json["labels"],
            nlohmann::json::parse(R"(["entailment", "neutral", "contradiction"])"));
  EXPECT_TRUE(task_json["question_answering"].is_null());
  EXPECT_EQ(task_json["adapter_config"]["mh_adapter"], false);  // Pfeiffer's
  EXPECT_EQ(task_json["max_length"], 48);                       // the option's, over the pack's 24
  EXPECT_EQ(task_json["bytes"], predictor.task_bytes("nli"));
  EXPECT_EQ(task_json["base"]["config_sha256"], base.config_sha256);
  EXPECT_EQ(task_json["base"]["matches"], true);
  EXPECT_FALSE(task_json.contains("pack"));  // where it lies is not said
  // Without the option: the default length, at most the positions.
  EXPECT_EQ(Predictor(files().model, {}).base_info().max_length,
            std::min<int64_t>(kDefaultMaxLength, base.config.max_position_embeddings));
}

// A model directory that records its run (a full fine-tuning's length and precision) runs the
// requests that name no task so, as a pack's record runs its task's; with packs, theirs decides
// the precision, as it does for eval.
TEST(Predictor, TheModelDirectorysRecordSetsItsLengthAndPrecision) {
  const std::string dir = files().root + "/recorded_base";
  std::filesystem::remove_all(dir);
  std::filesystem::copy(files().model, dir);
  write_model_directory_record(dir, {20, std::nullopt, Precision::kBFloat16});
  const Predictor recorded(dir, {});
  EXPECT_EQ(recorded.max_length(std::nullopt), 20);
  EXPECT_EQ(recorded.precision(), Precision::kBFloat16);
  const auto encoded = recorded.predict(
      std::nullopt,
      {TextInput{std::string(200, 'a') + " b c d e f g h i j k l m n o p q r s t u v w x y z",
                 std::nullopt}});
  EXPECT_EQ(encoded.size(), 1u);
  AdapterPackOptions fp32;
  fp32.precision = Precision::kFloat32;
  {
    BertForSequenceClassification model = load_bert_for_sequence_classification(dir);
    model->add_task("topic", AdapterConfig::houlsby(), HeadConfig::classification({"a", "b"}));
    save_adapter_pack(model, "topic", dir + "_topic", fp32);
  }
  EXPECT_EQ(Predictor(dir, {dir + "_topic"}).precision(), Precision::kFloat32);
  write_model_directory_record(dir, {200, std::nullopt, std::nullopt});
  EXPECT_ERROR_CONTAINS(Predictor(dir, {}), "config.json: adaptertune.max_length");
}

TEST(Predictor, JsonLinesHaveTheDocumentedShape) {
  HeadConfig labels = HeadConfig::classification({"neg", "pos"});
  const Prediction p = make_prediction(labels, {0.0f, 1.0f}, std::string("sst2"));
  EXPECT_EQ(p.label, "pos");
  const std::string json = p.to_json();
  EXPECT_EQ(json.rfind("{\"task\":\"sst2\",\"label\":\"pos\",\"probabilities\":{\"neg\":", 0), 0u)
      << json;
  EXPECT_NE(json.find(",\"logits\":[0.0,1.0]}"), std::string::npos) << json;
  const Prediction r = make_prediction(HeadConfig::regression(), {2.5f});
  EXPECT_EQ(r.to_json(), "{\"task\":null,\"score\":2.5,\"logits\":[2.5]}");
  HeadConfig unnamed;  // no id2label: Hugging Face's LABEL_<i>
  EXPECT_EQ(make_prediction(unnamed, {3.0f, 1.0f}).label, "LABEL_0");
}

}  // namespace
}  // namespace adaptertune
