#include "adaptertune/io/adapter_pack.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/training/freeze_policy.h"
#include "json_util.h"
#include "test_util.h"

namespace adaptertune {
namespace {

std::string fresh_dir(const std::string& name) {
  std::string dir =
      ::testing::TempDir() + "adaptertune_pack_" + name + "_" + std::to_string(::getpid());
  EXPECT_EQ(std::system(("rm -rf '" + dir + "'").c_str()), 0);
  return dir;
}

HeadConfig sentiment() {
  return HeadConfig::classification({"negative", "positive"});
}

// A model as after training: the same base as a fresh model of seed 11, with trained adapter,
// LayerNorms (the task's copies) and head (the task's own).
BertForSequenceClassification trained_model(const std::string& adapter,
                                            const FreezePolicy& policy = FreezePolicy{}) {
  torch::manual_seed(11);
  BertForSequenceClassification model(testing::tiny_config(), sentiment());
  model->bert->add_adapter(adapter, AdapterConfig::houlsby());
  prepare_task_training(*model, adapter, policy);
  torch::NoGradGuard no_grad;
  for (auto& p : trainable_parameters(*model)) p.add_(torch::randn_like(p) * 0.1);
  return model;
}

BertForSequenceClassification fresh_base(uint64_t seed = 11, HeadConfig head = sentiment()) {
  torch::manual_seed(seed);
  return BertForSequenceClassification(testing::tiny_config(), head);
}

// What pack_load_order() reads of a pack: its name and the adapters it was stacked on.
AdapterPackInfo pack_info(const std::string& name, std::vector<std::string> stacked_on) {
  AdapterPackInfo info;
  info.name = name;
  info.stacked_on = std::move(stacked_on);
  return info;
}

torch::Tensor logits(BertForSequenceClassification& model) {
  model->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor({{1, 7, 9, 12, 2}, {1, 30, 2, 0, 0}}, torch::kLong);
  auto mask = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}, torch::kLong);
  return model(ids, mask);
}

TEST(AdapterPack, RoundTripReproducesTheTrainedModel) {
  auto trained = trained_model("sst2");
  const std::string dir = fresh_dir("roundtrip");
  AdapterPackOptions options;
  options.base_model_name = "tiny-test-bert";
  save_adapter_pack(trained, "sst2", dir, options);

  auto model = fresh_base();
  AdapterPackLoad load = load_adapter_pack(model, dir);
  EXPECT_TRUE(load.warnings.empty()) << load.warnings.front();
  EXPECT_TRUE(load.head_loaded);
  EXPECT_EQ(load.adapter_name, "sst2");
  EXPECT_EQ(model->bert->active_adapter(), "sst2");
  EXPECT_EQ(load.info.base_model_name, "tiny-test-bert");
  EXPECT_TRUE(load.info.layer_norms);
  ASSERT_TRUE(load.info.head.has_value());
  EXPECT_EQ(load.info.head->id2label, (std::vector<std::string>{"negative", "positive"}));
  EXPECT_TRUE(torch::equal(logits(model), logits(trained)));
}

TEST(AdapterPack, FilesUseAdapterHubNamesAndLayout) {
  auto trained = trained_model("sst2");
  const std::string dir = fresh_dir("layout");
  save_adapter_pack(trained, "sst2", dir);
  for (const char* file : {"adapter_config.json", "adapter.safetensors", "head_config.json",
                           "model_head.safetensors"}) {
    EXPECT_TRUE(file_exists(dir + "/" + file)) << file;
  }
  SafetensorsFile weights(dir + "/adapter.safetensors");
  EXPECT_TRUE(weights.contains("bert.encoder.layer.0.output.adapters.sst2.adapter_down.0.weight"));
  EXPECT_TRUE(weights.contains("bert.encoder.layer.1.output.adapters.sst2.adapter_up.bias"));
  EXPECT_TRUE(
      weights.contains("bert.encoder.layer.0.attention.output.adapters.sst2.adapter_up.weight"));
  EXPECT_TRUE(weights.contains("bert.encoder.layer.1.output.LayerNorm.weight"));
  EXPECT_TRUE(weights.contains("bert.embeddings.LayerNorm.bias"));
  EXPECT_FALSE(weights.contains("bert.encoder.layer.0.output.dense.weight"));
  EXPECT_EQ(SafetensorsFile(dir + "/model_head.safetensors").names(),
            (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  const std::string config = read_file(dir + "/adapter_config.json");
  for (const char* fragment :
       {"\"name\": \"sst2\"", "\"mh_adapter\": true", "\"non_linearity\": \"swish\"",
        "\"base_config_sha256\"", "\"base_weights_sha256\"", "\"model_type\": \"bert\""}) {
    EXPECT_NE(config.find(fragment), std::string::npos) << fragment << " in " << config;
  }
}

TEST(AdapterPack, WarnsWithBothIdentitiesOnAnotherBase) {
  auto trained = trained_model("sst2");
  const std::string dir = fresh_dir("otherbase");
  save_adapter_pack(trained, "sst2", dir);
  auto other = fresh_base(/*seed=*/99);
  AdapterPackLoad load = load_adapter_pack(other, dir);
  ASSERT_EQ(load.warnings.size(), 1u);
  const std::string expected_hash = base_weights_sha256(*other, true);
  EXPECT_NE(load.warnings[0].find(load.info.base_weights_sha256), std::string::npos);
  EXPECT_NE(load.warnings[0].find(expected_hash), std::string::npos);
  EXPECT_NE(load.info.base_weights_sha256, expected_hash);
}

TEST(AdapterPack, LoadAsAnotherNameAndWithoutHeadOrLayerNorms) {
  // Trained AdapterHub's way: the LayerNorms stayed frozen, so the pack leaves them out.
  auto trained = trained_model("sst2", FreezePolicy::from_name("adapters-head"));
  const std::string dir = fresh_dir("options");
  AdapterPackOptions options;
  options.include_head = false;
  save_adapter_pack(trained, "sst2", dir, options);
  EXPECT_FALSE(file_exists(dir + "/head_config.json"));
  EXPECT_FALSE(SafetensorsFile(dir + "/adapter.safetensors")
                   .contains("bert.encoder.layer.1.output.LayerNorm.weight"));
  auto model = fresh_base();
  AdapterPackLoad load = load_adapter_pack(model, dir, std::string("sentiment"));
  EXPECT_FALSE(load.head_loaded);
  EXPECT_EQ(model->bert->adapter_names(), std::vector<std::string>{"sentiment"});
  auto params = model->named_parameters();
  auto trained_params = trained->named_parameters();
  EXPECT_TRUE(
      torch::equal(params["bert.encoder.layer.0.output.adapters.sentiment.adapter_up.weight"],
                   trained_params["bert.encoder.layer.0.output.adapters.sst2.adapter_up.weight"]));
}

// The README's route on a base whose checkpoint has no pooler (as the shipped base): the pooler
// is initialised at random on every load, so the pack must carry it to reproduce its logits.
TEST(AdapterPack, CarriesAPoolerTheBaseCheckpointLacks) {
  const std::string base_dir = fresh_dir("poolerless_base");
  torch::manual_seed(5);
  save_pretrained(*BertModel(testing::tiny_config(), /*add_pooling_layer=*/false), base_dir);

  torch::manual_seed(6);
  auto trained = load_bert_for_sequence_classification(base_dir, sentiment());
  EXPECT_FALSE(trained->bert->pooler_pretrained());
  trained->bert->add_adapter("sst2", AdapterConfig::houlsby());
  FreezePolicy policy;  // the default: the pooler stays frozen, so the task keeps a frozen copy
  policy.train_pooler = false;
  prepare_task_training(*trained, "sst2", policy);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : trainable_parameters(*trained)) p.add_(torch::randn_like(p) * 0.1);
  }
  const std::string dir = fresh_dir("poolerless_pack");
  save_adapter_pack(trained, "sst2", dir);
  EXPECT_TRUE(SafetensorsFile(dir + "/adapter.safetensors").contains("bert.pooler.dense.weight"));

  torch::manual_seed(7);  // another random pooler
  auto loaded = load_bert_for_sequence_classification(base_dir, sentiment());
  AdapterPackLoad load = load_adapter_pack(loaded, dir);
  EXPECT_TRUE(load.warnings.empty()) << load.warnings.front();
  EXPECT_TRUE(load.info.pooler);
  EXPECT_TRUE(torch::equal(logits(loaded), logits(trained)));
}

// Python's float floor division, as AdapterHub rebuilds the bottleneck: int(hidden // factor).
int64_t adapterhub_bottleneck(int64_t hidden, double factor) {
  const double h = static_cast<double>(hidden);
  const double mod = std::fmod(h, factor);
  const double div = (h - mod) / factor;
  double floor_div = std::floor(div);
  if (div - floor_div > 0.5) floor_div += 1.0;
  return static_cast<int64_t>(floor_div);
}

TEST(AdapterPack, WritesTheReductionFactorAdapterHubRebuildsTheSizeFrom) {
  torch::manual_seed(11);
  BertForSequenceClassification model(testing::tiny_config(), sentiment());  // hidden 32
  AdapterConfig config = AdapterConfig::houlsby();
  config.adapter_size = 10;  // 32 / 10 = 3.2, but 32 // 3.2 is 9 in Python
  model->bert->add_adapter("sst2", config);
  const std::string dir = fresh_dir("reduction");
  save_adapter_pack(model, "sst2", dir);
  const auto json = detail::parse_json(read_file(dir + "/adapter_config.json"), "pack");
  const double factor = json["config"]["reduction_factor"].get<double>();
  EXPECT_EQ(adapterhub_bottleneck(32, factor), 10) << "reduction_factor " << factor;
  EXPECT_EQ(adapterhub_bottleneck(32, 3.2), 9);  // the naive factor would be wrong
  EXPECT_EQ(json["config"]["adapter_size"].get<int64_t>(), 10);
  // Every bottleneck of bert-base and bert-large widths survives the round trip.
  for (int64_t hidden : {768, 1024}) {
    for (int64_t m = 1; m <= hidden; ++m) {
      ASSERT_EQ(adapterhub_bottleneck(hidden, AdapterConfig::reduction_factor_for(hidden, m)), m)
          << hidden << " / " << m;
    }
  }
  AdapterConfig by_factor = AdapterConfig::houlsby();
  by_factor.reduction_factor = 3.2;
  EXPECT_EQ(by_factor.bottleneck_size(32), 9);  // as AdapterHub computes it
}

TEST(AdapterPack, RecordsTheLengthAndPrecisionItWasTrainedWith) {
  auto trained = trained_model("sst2");
  const std::string dir = fresh_dir("settings");
  AdapterPackOptions options;
  options.max_length = 64;
  options.precision = Precision::kBFloat16;
  save_adapter_pack(trained, "sst2", dir, options);
  AdapterPackInfo info = read_adapter_pack_info(dir);
  EXPECT_EQ(info.max_length, 64);
  ASSERT_TRUE(info.precision.has_value());
  EXPECT_EQ(*info.precision, Precision::kBFloat16);
  const std::string plain = fresh_dir("settings_none");
  save_adapter_pack(trained, "sst2", plain);
  EXPECT_EQ(read_adapter_pack_info(plain).max_length, 0);
  EXPECT_FALSE(read_adapter_pack_info(plain).precision.has_value());
}

TEST(AdapterPack, RecordsTheStackItWasTrainedOnAndLoadsAfterIt) {
  auto trained = trained_model("sst2");
  const std::string dir = fresh_dir("stacked");
  AdapterPackOptions options;
  options.stacked_on = {"lang", "domain"};
  save_adapter_pack(trained, "sst2", dir, options);
  const AdapterPackInfo stacked = read_adapter_pack_info(dir);
  EXPECT_EQ(stacked.stacked_on, (std::vector<std::string>{"lang", "domain"}));
  const nlohmann::json config = nlohmann::json::parse(read_file(dir + "/adapter_config.json"));
  EXPECT_EQ(config.at("adaptertune").at("stacked_on"), nlohmann::json::array({"lang", "domain"}));
  const std::string plain = fresh_dir("stacked_none");
  save_adapter_pack(trained, "sst2", plain);
  EXPECT_TRUE(read_adapter_pack_info(plain).stacked_on.empty());
  EXPECT_FALSE(nlohmann::json::parse(read_file(plain + "/adapter_config.json"))
                   .at("adaptertune")
                   .contains("stacked_on"));  // trained alone: nothing recorded

  // Loaded after the packs it was stacked on that are among the packs, in any order given.
  EXPECT_EQ(pack_load_order({stacked, pack_info("domain", {"lang"}), pack_info("other", {}),
                             pack_info("lang", {})}),
            (std::vector<size_t>{2, 3, 1, 0}));
  // One below it that is not among them holds nothing back (the loader reports it).
  EXPECT_EQ(pack_load_order({stacked, pack_info("lang", {})}), (std::vector<size_t>{1, 0}));
  // A pack stacked on a fusion comes after the fusion, which comes after what it fuses.
  AdapterPackInfo fusion = pack_info("lang,domain", {});
  fusion.fusion = FusionConfig{};
  fusion.fused = {"lang", "domain"};
  EXPECT_EQ(pack_load_order({pack_info("top", {"lang,domain"}), fusion, pack_info("domain", {}),
                             pack_info("lang", {})}),
            (std::vector<size_t>{2, 3, 1, 0}));
  // Packs that need each other round a cycle go as given, adapters first.
  EXPECT_EQ(pack_load_order({fusion, pack_info("lang", {"lang,domain"}), pack_info("a", {"b"}),
                             pack_info("b", {"a"})}),
            (std::vector<size_t>{1, 2, 3, 0}));

  // The Stack it runs in, and which of the adapters below it a set of loaded ones lacks.
  EXPECT_EQ(stacked.trained_stack(), (std::vector<std::string>{"lang", "domain", "sst2"}));
  EXPECT_EQ(pack_info("alone", {}).trained_stack(), (std::vector<std::string>{"alone"}));
  EXPECT_EQ(stacked.missing_below({"sst2", "domain"}), (std::vector<std::string>{"lang"}));
  EXPECT_TRUE(stacked.missing_below({"domain", "lang"}).empty());

  for (const char* bad : {R"("lang")", R"([""])", R"(["lang", 3])", R"(["sst2"])"}) {
    SCOPED_TRACE(bad);
    nlohmann::json broken = config;
    broken["adaptertune"]["stacked_on"] = nlohmann::json::parse(bad);
    write_file_atomic(dir + "/adapter_config.json", broken.dump());
    EXPECT_ERROR_CONTAINS(read_adapter_pack_info(dir),
                          "key 'stacked_on' must be an array of the names of the adapters "
                          "below it");
  }
}

// A span head's pack records its windows and answer options; a malformed record is refused by
// key, naming the file.
TEST(AdapterPack, RecordsTheWindowsAndAnswersOfASpanHead) {
  torch::manual_seed(11);
  BertForQuestionAnswering model(testing::tiny_config());
  model->bert->add_adapter("squad", AdapterConfig::houlsby());
  const std::string dir = fresh_dir("span");
  AdapterPackOptions options;
  options.max_length = 48;
  options.question_answering = QuestionAnsweringOptions{};
  options.question_answering->features.max_length = 48;
  options.question_answering->features.doc_stride = 12;
  options.question_answering->features.max_query_length = 10;
  options.question_answering->answers.n_best = 5;
  options.question_answering->answers.max_answer_length = 7;
  options.question_answering->answers.null_score_threshold = -1.5;
  options.question_answering->answers.allow_no_answer = true;
  save_adapter_pack(model, "squad", dir, options);
  const AdapterPackInfo info = read_adapter_pack_info(dir);
  ASSERT_TRUE(info.question_answering);
  const QuestionAnsweringOptions& qa = *info.question_answering;
  EXPECT_EQ(qa.features.max_length, 48);
  EXPECT_EQ(qa.features.doc_stride, 12);
  EXPECT_EQ(qa.features.max_query_length, 10);
  EXPECT_EQ(qa.answers.n_best, 5);
  EXPECT_EQ(qa.answers.max_answer_length, 7);
  EXPECT_EQ(qa.answers.null_score_threshold, -1.5);
  EXPECT_TRUE(qa.answers.allow_no_answer);
  // What it runs with: the record, in windows of the length asked for, else the recorded one,
  // else SQuAD's 384 or all of the base's positions when it has fewer.
  const BertConfig base;                              // bert-base: 512 positions
  const ModelDirectoryRecord record = info.record();  // as a model directory records it
  EXPECT_EQ(record.max_length, 48);
  ASSERT_TRUE(record.question_answering.has_value());
  EXPECT_EQ(record.question_answering->answers.n_best, 5);
  EXPECT_EQ(record.precision, info.precision);
  EXPECT_EQ(info.span_options(base).features.doc_stride, 12);
  EXPECT_EQ(info.span_options(base).features.max_length, 48);
  EXPECT_EQ(info.span_options(base, 40).features.max_length, 40);
  EXPECT_EQ(info.span_options(base, 40).answers.n_best, 5);
  // The recorded stride and question length belong to windows of 48: other windows take their
  // own defaults.
  EXPECT_EQ(info.span_options(base, 48).features.doc_stride, 12);
  EXPECT_EQ(info.span_options(base, 48).features.max_query_length, 10);
  EXPECT_FALSE(info.span_options(base, 40).features.doc_stride.has_value());
  EXPECT_EQ(info.span_options(base, 40).features.stride(), 13);
  EXPECT_FALSE(info.span_options(base, 40).features.max_query_length.has_value());
  EXPECT_EQ(info.span_options(base, 40).features.query_length(), 20);
  AdapterPackInfo length_only = info;  // a pack that records its length alone
  length_only.question_answering.reset();
  EXPECT_EQ(length_only.span_options(base).features.max_length, 48);
  EXPECT_FALSE(length_only.span_options(base).features.doc_stride.has_value());
  EXPECT_EQ(length_only.span_options(base).features.stride(), 16);        // a third of its 48
  EXPECT_EQ(length_only.span_options(base).features.query_length(), 24);  // half of its 48
  EXPECT_EQ(AdapterPackInfo{}.span_options(base).features.max_length, 384);
  EXPECT_EQ(AdapterPackInfo{}.span_options(testing::tiny_config()).features.max_length,
            testing::tiny_config().max_position_embeddings);
  const nlohmann::json config = nlohmann::json::parse(read_file(dir + "/adapter_config.json"));
  EXPECT_EQ(config.at("adaptertune").at("question_answering"),
            nlohmann::json::parse(R"({"doc_stride": 12, "max_query_length": 10, "n_best": 5,
                                      "max_answer_length": 7, "null_score_threshold": -1.5,
                                      "allow_no_answer": true})"));
  EXPECT_EQ(nlohmann::json::parse(question_answering_record_json(qa)),
            config.at("adaptertune").at("question_answering"));
  // A pack written before allow_no_answer was recorded reads as one that gives a span.
  nlohmann::json older = config;
  older["adaptertune"]["question_answering"].erase("allow_no_answer");
  write_file_atomic(dir + "/adapter_config.json", older.dump());
  EXPECT_FALSE(read_adapter_pack_info(dir).question_answering->answers.allow_no_answer);
  const std::string plain = fresh_dir("span_none");
  save_adapter_pack(model, "squad", plain);
  EXPECT_FALSE(read_adapter_pack_info(plain).question_answering);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"doc_stride": 0})", "key 'doc_stride' must be a count of at least 1, found 0"},
      {R"({"n_best": "5"})", "key 'n_best' must be an integer"},
      {R"({"max_query_length": 45})",
       "key 'max_query_length' must be at most max_length 48 - 4, to leave room for context"},
      {R"({"null_score_threshold": null})", "key 'null_score_threshold' must be a number"},
      {R"({"allow_no_answer": 1})", "key 'allow_no_answer' must be true or false"},
      {R"({"stride": 3})", "unknown key(s) 'stride'"}};
  for (const auto& [change, message] : bad) {
    SCOPED_TRACE(change);
    nlohmann::json broken = config;
    broken["adaptertune"]["question_answering"].update(nlohmann::json::parse(change));
    write_file_atomic(dir + "/adapter_config.json", broken.dump());
    EXPECT_ERROR_CONTAINS(read_adapter_pack_info(dir),
                          "adapter_config.json (adaptertune.question_answering): " + message);
  }
  nlohmann::json missing = config;
  missing["adaptertune"]["question_answering"].erase("n_best");
  write_file_atomic(dir + "/adapter_config.json", missing.dump());
  EXPECT_ERROR_CONTAINS(read_adapter_pack_info(dir), "key 'n_best' is missing");
}

// A span model directory (a fully fine-tuned BertForQuestionAnswering) records its windows and
// answers in config.json as a pack does, the config still loads, and a bad record is refused
// naming the file and key.
TEST(AdapterPack, AModelDirectoryRecordsItsWindowsAndAnswers) {
  torch::manual_seed(3);
  BertForQuestionAnswering model(testing::tiny_config());
  const std::string dir = fresh_dir("span_model_record");
  save_pretrained(*model, dir);
  EXPECT_EQ(read_model_directory_record(dir).max_length, 0);  // none recorded
  EXPECT_FALSE(read_model_directory_record(dir).question_answering);
  EXPECT_EQ(
      read_model_directory_record(dir).span_options(testing::tiny_config()).features.max_length,
      testing::tiny_config().max_position_embeddings);  // SQuAD's 384, at most the positions
  QuestionAnsweringOptions qa;
  qa.features.max_length = 48;
  qa.features.doc_stride = 12;
  qa.features.max_query_length = 10;
  qa.answers.n_best = 5;
  qa.answers.allow_no_answer = true;
  write_model_directory_record(dir, {48, qa, Precision::kBFloat16});
  const ModelDirectoryRecord record = read_model_directory_record(dir);
  EXPECT_EQ(record.max_length, 48);
  ASSERT_TRUE(record.question_answering);
  EXPECT_EQ(record.question_answering->features.max_length, 48);
  EXPECT_EQ(record.question_answering->features.doc_stride, 12);
  EXPECT_EQ(record.question_answering->features.max_query_length, 10);
  EXPECT_EQ(record.question_answering->answers.n_best, 5);
  EXPECT_TRUE(record.question_answering->answers.allow_no_answer);
  EXPECT_EQ(record.precision, Precision::kBFloat16);
  EXPECT_EQ(record.span_options(testing::tiny_config()).features.doc_stride, 12);
  EXPECT_EQ(record.span_options(testing::tiny_config(), 40).features.max_length, 40);
  // The rest of config.json is as save_pretrained() wrote it, and loads.
  EXPECT_EQ(BertConfig::from_file(dir + "/config.json"), testing::tiny_config());
  const nlohmann::json config = nlohmann::json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(config.at("architectures"), nlohmann::json::parse(R"(["BertForQuestionAnswering"])"));
  EXPECT_EQ(config.at("adaptertune").at("max_length"), 48);
  EXPECT_EQ(config.at("adaptertune").at("question_answering"),
            nlohmann::json::parse(question_answering_record_json(qa)));
  load_bert_for_question_answering(dir);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"max_length": -1})",
       "config.json (adaptertune): key 'max_length' must be a positive number of tokens"},
      {R"({"question_answering": {"doc_stride": 0}})",
       "(adaptertune.question_answering): key 'doc_stride' must be a count of at least 1"},
      {R"({"precision": "fp8"})",
       "config.json (adaptertune): key 'precision' must be \"fp32\", \"bf16\" or \"fp16\""},
      {R"({"windows": 3})", "config.json (adaptertune): unknown key(s) 'windows'"}};
  for (const auto& [change, message] : bad) {
    SCOPED_TRACE(change);
    nlohmann::json broken = config;
    broken["adaptertune"].merge_patch(nlohmann::json::parse(change));
    write_file_atomic(dir + "/config.json", broken.dump());
    EXPECT_ERROR_CONTAINS(read_model_directory_record(dir), message);
  }
}

TEST(AdapterPack, LoadOrderWaitsForEveryPackOfANameAndScalesToManyPacks) {
  // A pack that names itself below it is not held back by itself (a hand-edited file can).
  EXPECT_EQ(pack_load_order({pack_info("self", {"self"})}), (std::vector<size_t>{0}));
  // Two packs of one name (the loader reports the second): a pack stacked on it waits for both.
  EXPECT_EQ(pack_load_order({pack_info("top", {"x"}), pack_info("x", {"y"}), pack_info("x", {}),
                             pack_info("y", {})}),
            (std::vector<size_t>{2, 3, 1, 0}));
  // A deep stack given top first, among many independent tasks: each after the one below it,
  // the independent ones in the first pass, as given.
  const size_t depth = 600, independent = 3000;
  std::vector<AdapterPackInfo> infos;
  for (size_t level = depth; level-- > 1;) {
    infos.push_back(
        pack_info("level" + std::to_string(level), {"level" + std::to_string(level - 1)}));
  }
  infos.push_back(pack_info("level0", {}));
  for (size_t i = 0; i < independent; ++i) {
    infos.push_back(pack_info("task" + std::to_string(i), {"level0"}));
  }
  const std::vector<size_t> order = pack_load_order(infos);
  ASSERT_EQ(order.size(), infos.size());
  EXPECT_EQ(order.front(), depth - 1) << "level0 first";
  std::map<std::string, size_t> position;
  for (size_t at = 0; at < order.size(); ++at) position[infos[order[at]].name] = at;
  for (const AdapterPackInfo& info : infos) {
    for (const std::string& below : info.stacked_on) {
      EXPECT_LT(position.at(below), position.at(info.name)) << info.name;
    }
  }
  // The tasks on level0 follow it in the same pass, as given, before the deeper levels.
  EXPECT_EQ(infos[order[1]].name, "task0");
  EXPECT_EQ(infos[order[independent]].name, "task" + std::to_string(independent - 1));
  EXPECT_EQ(infos[order[independent + 1]].name, "level1");
}

TEST(AdapterPack, BadPacksFailCleanlyAndLeaveTheModelUnchanged) {
  auto trained = trained_model("sst2");
  const std::string dir = fresh_dir("bad");
  save_adapter_pack(trained, "sst2", dir);

  // The task brings its own head: the model's head (3 labels here) does not matter.
  auto three_labels = fresh_base(11, HeadConfig::classification({"a", "b", "c"}));
  load_adapter_pack(three_labels, dir);
  EXPECT_EQ(logits(three_labels).size(1), 2);
  EXPECT_TRUE(torch::equal(logits(three_labels), logits(trained)));

  // An adapter tensor missing from the weights file, then a LayerNorm the pack promises.
  NamedTensors weights = load_safetensors(dir + "/adapter.safetensors");
  auto adapter_tensor = std::find_if(weights.begin(), weights.end(), [](const auto& w) {
    return w.first.find(".adapters.sst2.adapter_up.weight") != std::string::npos;
  });
  ASSERT_NE(adapter_tensor, weights.end());
  weights.erase(adapter_tensor);
  save_safetensors(dir + "/adapter.safetensors", weights);
  auto model = fresh_base();
  auto before = logits(model);
  EXPECT_ERROR_CONTAINS(load_adapter_pack(model, dir), "lacks tensor \"bert.encoder.layer.");
  EXPECT_TRUE(model->bert->adapter_names().empty());
  EXPECT_TRUE(torch::equal(logits(model), before));
  weights = load_safetensors(dir + "/adapter.safetensors");
  weights.erase(std::find_if(weights.begin(), weights.end(), [](const auto& w) {
    return w.first == "bert.embeddings.LayerNorm.weight";
  }));
  save_safetensors(dir + "/adapter.safetensors", weights);
  EXPECT_ERROR_CONTAINS(load_adapter_pack(model, dir),
                        "lacks tensor \"bert.embeddings.LayerNorm.weight\"");
  EXPECT_TRUE(torch::equal(logits(model), before));

  // A truncated weights file.
  std::string bytes = read_file(dir + "/adapter.safetensors");
  write_file_atomic(dir + "/adapter.safetensors", bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR_CONTAINS(load_adapter_pack(model, dir), "adapter.safetensors");
  EXPECT_TRUE(model->bert->adapter_names().empty());

  // A head_config.json of the wrong shape, or whose head kind is no string, is named as such.
  const std::string head_path = dir + "/head_config.json";
  const std::string head_text = read_file(head_path);
  write_file_atomic(head_path, "[1]");
  EXPECT_ERROR_CONTAINS(read_adapter_pack_info(dir),
                        head_path + ": expected a JSON object, found array");
  write_file_atomic(head_path, R"({"num_labels": 2, "model_class": 5})");
  EXPECT_ERROR_CONTAINS(read_adapter_pack_info(dir),
                        head_path + ": key 'model_class' must be a string, found 5");
  write_file_atomic(head_path, R"({"head_type": null})");
  EXPECT_ERROR_CONTAINS(load_adapter_pack(model, dir),
                        head_path + ": key 'head_type' must be a string, found null");
  EXPECT_TRUE(model->bert->adapter_names().empty());
  write_file_atomic(head_path, head_text);
  EXPECT_NO_THROW(read_adapter_pack_info(dir));

  const std::string empty_dir = fresh_dir("empty");
  make_directories(empty_dir);
  EXPECT_ERROR_CONTAINS(read_adapter_pack_info(empty_dir),
                        "not an adapter pack (it has neither adapter_config.json nor "
                        "adapter_fusion_config.json)");
  EXPECT_ERROR_CONTAINS(read_adapter_pack_info(fresh_dir("missing")),
                        "_missing_" + std::to_string(::getpid()) +
                            ": no such directory, where an adapter pack was expected (a "
                            "directory holding adapter_config.json or adapter_fusion_config.json)");
  EXPECT_ERROR_CONTAINS(load_adapter_pack(model, head_path),
                        "head_config.json: a file, where an adapter pack was expected");
  EXPECT_ERROR_CONTAINS(save_adapter_pack(model, "nope", fresh_dir("nope")),
                        "no adapter named \"nope\"");
}

// An AdapterHub flex head ("config" an object: AutoAdapterModel's heads.<name>.<i>.* layers) is
// refused as such when the head is to be loaded, not by its first unknown tensor name; the
// adapter still loads without it.
// Replaces the pack's head with an AdapterHub flex head: head_config.json as AdapterHub's
// save_head() writes it (the settings under "config"), and its tensors `heads.<name>.<i>.*`.
void write_flex_head(const std::string& dir, const std::string& name, const nlohmann::json& config,
                     const NamedTensors& tensors) {
  const nlohmann::json head = {{"config", config},
                               {"hidden_size", testing::tiny_config().hidden_size},
                               {"model_class", "BertAdapterModel"},
                               {"model_name", "tiny-test-bert"},
                               {"model_type", "bert"},
                               {"name", name},
                               {"version", "adapters.1.1.0"}};
  write_file_atomic(dir + "/head_config.json", head.dump(2));
  save_safetensors(dir + "/model_head.safetensors", tensors);
}

// A pack of trained_model(task), in a fresh directory `name`.
std::string trained_pack(const std::string& task, const std::string& name) {
  auto trained = trained_model(task);
  const std::string dir = fresh_dir(name);
  save_adapter_pack(trained, task, dir);
  return dir;
}

nlohmann::json default_flex_config() {  // ClassificationHead's defaults, as AdapterHub saves them
  return {{"head_type", "classification"},
          {"num_labels", 2},
          {"layers", 2},
          {"activation_function", "tanh"},
          {"label2id", {{"negative", 0}, {"positive", 1}}},
          {"use_pooler", false},
          {"bias", true},
          {"dropout_prob", nullptr}};
}

// [CLS]'s hidden state and the pooler's output of logits()' batch, for the active task.
std::pair<torch::Tensor, torch::Tensor> cls_and_pooled(BertForSequenceClassification& model) {
  model->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor({{1, 7, 9, 12, 2}, {1, 30, 2, 0, 0}}, torch::kLong);
  auto mask = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}, torch::kLong);
  const BertModelOutput out = model->bert->forward(ids, mask);
  return {out.last_hidden_state.select(1, 0), out.pooler_output};
}

// AdapterHub's default classification head (Dropout, Linear, Tanh, Dropout, Linear on [CLS])
// reads as a pooler of the task's own and a classifier: the logits are AdapterHub's formula,
// and the task saved again is a static pack that gives them too.
TEST(AdapterPack, FlexHeadOfTwoLayersReadsAsAPoolerAndAClassifier) {
  const std::string dir = trained_pack("sst2", "flex2");
  const int64_t hidden = testing::tiny_config().hidden_size;
  torch::manual_seed(5);
  const torch::Tensor w1 = torch::randn({hidden, hidden}) * 0.2, b1 = torch::randn({hidden});
  const torch::Tensor w4 = torch::randn({2, hidden}), b4 = torch::randn({2});
  write_flex_head(dir, "sst2", default_flex_config(),
                  {{"heads.sst2.1.weight", w1},
                   {"heads.sst2.1.bias", b1},
                   {"heads.sst2.4.weight", w4},
                   {"heads.sst2.4.bias", b4}});
  const AdapterPackInfo info = read_adapter_pack_info(dir);
  ASSERT_TRUE(info.head.has_value());
  EXPECT_EQ(info.head->id2label, (std::vector<std::string>{"negative", "positive"}));
  EXPECT_FALSE(info.span_head);
  auto model = fresh_base(11, HeadConfig::classification({"x", "y", "z"}));
  const AdapterPackLoad load = load_adapter_pack(model, dir);
  EXPECT_TRUE(load.head_loaded);
  EXPECT_TRUE(load.warnings.empty()) << load.warnings.front();
  EXPECT_EQ(model->head_config("sst2").id2label,
            (std::vector<std::string>{"negative", "positive"}));
  const auto [cls, pooled] = cls_and_pooled(model);
  const torch::Tensor expected = torch::tanh(cls.matmul(w1.t()) + b1).matmul(w4.t()) + b4;
  const torch::Tensor got = logits(model);
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-5)) << got << expected;
  // Saved again: a static pack (the pooler among the task's tensors) with the same logits.
  const std::string saved = fresh_dir("flex2_static");
  save_adapter_pack(model, "sst2", saved);
  EXPECT_TRUE(read_adapter_pack_info(saved).pooler);
  auto again = fresh_base();
  load_adapter_pack(again, saved);
  EXPECT_TRUE(torch::allclose(logits(again), expected, 1e-5, 1e-5));
}

// One layer on the pooler's output (use_pooler; AdapterHub's reading of a static head), without
// a bias and with one output: a regression head on the base's pooler.
TEST(AdapterPack, FlexHeadOfOneLayerOnThePoolerReadsAsTheClassifier) {
  const std::string dir = trained_pack("stsb", "flex1");
  const int64_t hidden = testing::tiny_config().hidden_size;
  torch::manual_seed(6);
  const torch::Tensor w1 = torch::randn({1, hidden});
  nlohmann::json config = default_flex_config();
  config["num_labels"] = 1;
  config["layers"] = 1;
  config["use_pooler"] = true;
  config["bias"] = false;
  config["label2id"] = nullptr;
  config["dropout_prob"] = 0.2;
  write_flex_head(dir, "stsb", config, {{"heads.stsb.1.weight", w1}});
  auto model = fresh_base();
  EXPECT_TRUE(load_adapter_pack(model, dir).head_loaded);
  const HeadConfig& head = model->head_config("stsb");
  EXPECT_EQ(head.problem_type, ProblemType::kRegression);
  EXPECT_DOUBLE_EQ(head.classifier_dropout, 0.2);
  const auto [cls, pooled] = cls_and_pooled(model);
  EXPECT_TRUE(torch::allclose(logits(model), pooled.matmul(w1.t()), 1e-5, 1e-5));
}

// A question_answering flex head of one layer is qa_outputs.
TEST(AdapterPack, FlexSpanHeadReadsAsQaOutputs) {
  const std::string dir = fresh_dir("flex_span");
  {
    BertForQuestionAnswering model(testing::tiny_config());
    model->bert->add_adapter("squad", AdapterConfig::houlsby());
    save_adapter_pack(model, "squad", dir);
  }
  const int64_t hidden = testing::tiny_config().hidden_size;
  const torch::Tensor w = torch::randn({2, hidden}), b = torch::randn({2});
  write_flex_head(dir, "squad",
                  {{"head_type", "question_answering"},
                   {"num_labels", 2},
                   {"layers", 1},
                   {"activation_function", "tanh"},
                   {"label2id", nullptr},
                   {"dropout_prob", nullptr}},
                  {{"heads.squad.1.weight", w}, {"heads.squad.1.bias", b}});
  EXPECT_TRUE(read_adapter_pack_info(dir).span_head);
  BertForQuestionAnswering model(testing::tiny_config());
  EXPECT_TRUE(load_adapter_pack(model, dir).head_loaded);
  EXPECT_TRUE(torch::equal(model->qa_outputs->weight, w));
  EXPECT_TRUE(torch::equal(model->qa_outputs->bias, b));
}

// A flex head with no static layout, or malformed, is refused as what it is, and the pack's
// adapter still loads without its head.
TEST(AdapterPack, FlexHeadWithoutAStaticLayoutIsRefusedAsSuch) {
  const std::string dir = trained_pack("sst2", "flex");
  const std::string head_path = dir + "/head_config.json";
  const int64_t hidden = testing::tiny_config().hidden_size;
  const NamedTensors two_layers = {{"heads.sst2.1.weight", torch::zeros({hidden, hidden})},
                                   {"heads.sst2.1.bias", torch::zeros({hidden})},
                                   {"heads.sst2.4.weight", torch::zeros({2, hidden})},
                                   {"heads.sst2.4.bias", torch::zeros({2})}};
  auto refused_as_is = [&](const std::string& expected) {
    auto model = fresh_base();
    EXPECT_ERROR_CONTAINS(load_adapter_pack(model, dir), expected);
    EXPECT_TRUE(model->bert->adapter_names().empty());
    EXPECT_NO_THROW(load_adapter_pack(model, dir, std::nullopt, /*load_head=*/false));
    EXPECT_EQ(model->bert->adapter_names(), std::vector<std::string>{"sst2"});
  };
  auto refused = [&](const nlohmann::json& config, const std::string& expected) {
    write_flex_head(dir, "sst2", config, two_layers);
    refused_as_is(expected);
  };
  nlohmann::json config = default_flex_config();
  config["layers"] = 3;
  refused(config, head_path +
                      " (config): an AdapterHub flex head (head_type \"classification\", layers 3, "
                      "activation_function \"tanh\", use_pooler false) has no static BERT "
                      "layout; adaptertune reads a classification head of 1 layer on the pooler's "
                      "output (use_pooler) or of 2 layers with tanh on [CLS]");
  config = default_flex_config();
  config["activation_function"] = "relu";
  refused(config, "activation_function \"relu\", use_pooler false) has no static BERT layout");
  config = default_flex_config();
  config["use_pooler"] = true;
  refused(config, "layers 2, activation_function \"tanh\", use_pooler true) has no static");
  config = default_flex_config();
  config["layers"] = 1;  // a Linear on [CLS] itself: BERT's heads read the pooler's output
  refused(config, "layers 1, activation_function \"tanh\", use_pooler false) has no static");
  config = default_flex_config();
  config["head_type"] = "multilabel_classification";
  refused(config, "(head_type \"multilabel_classification\", layers 2");
  config = default_flex_config();
  config["layerz"] = 2;
  refused(config, head_path + " (config): unknown key(s) 'layerz'");
  config = default_flex_config();
  config["label2id"] = {{"negative", 0}, {"positive", 0}};
  refused(config, head_path +
                      " (config): key 'label2id' must be null or an object mapping 2 label names "
                      "to the ids 0..1");
  refused("x", head_path +
                   ": key 'config' must be null (a static head) or an object (an "
                   "AdapterHub flex head), found \"x\"");
  // The keys around the settings: AdapterHub's, a BERT model's.
  write_flex_head(dir, "sst2", default_flex_config(), two_layers);
  nlohmann::json outer = nlohmann::json::parse(read_file(head_path));
  outer["model_type"] = "roberta";
  write_file_atomic(head_path, outer.dump());
  refused_as_is(head_path + ": key 'model_type' must be \"bert\", found \"roberta\"");
  outer["model_type"] = "bert";
  outer["labels"] = {"a", "b"};
  write_file_atomic(head_path, outer.dump());
  refused_as_is(head_path + ": unknown key(s) 'labels'");
  // A tensor the head's description has no place for.
  write_flex_head(dir, "sst2", default_flex_config(),
                  {{"heads.sst2.1.weight", torch::zeros({hidden, hidden})},
                   {"heads.sst2.1.bias", torch::zeros({hidden})},
                   {"heads.sst2.3.weight", torch::zeros({2, hidden})},
                   {"heads.sst2.4.bias", torch::zeros({2})}});
  auto model = fresh_base();
  EXPECT_ERROR_CONTAINS(load_adapter_pack(model, dir),
                        "model_head.safetensors: tensor \"heads.sst2.3.weight\" is not a layer of "
                        "the flex head \"sst2\"");
  EXPECT_TRUE(model->bert->adapter_names().empty());
  // A pack that carries a pooler cannot take a second one from its head.
  FreezePolicy with_pooler;
  with_pooler.train_pooler = true;
  auto pooled = trained_model("sst2", with_pooler);
  const std::string pooled_dir = fresh_dir("flex_pooled");
  save_adapter_pack(pooled, "sst2", pooled_dir);
  ASSERT_TRUE(read_adapter_pack_info(pooled_dir).pooler);
  write_flex_head(pooled_dir, "sst2", default_flex_config(), two_layers);
  EXPECT_ERROR_CONTAINS(load_adapter_pack(model, pooled_dir),
                        "the pack carries a pooler, and its flex head's first layer reads as "
                        "another");
}

}  // namespace
}  // namespace adaptertune
