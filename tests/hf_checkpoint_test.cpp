#include "adaptertune/io/hf_checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "test_util.h"

namespace adaptertune {
namespace {

using testing::max_abs_diff;

std::string fresh_dir(const std::string& name) {
  std::string dir =
      ::testing::TempDir() + "adaptertune_hf_" + name + "_" + std::to_string(::getpid());
  EXPECT_EQ(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()), 0);
  return dir;
}

// Debian's python3 with torch is the independent reference. Without it the parity tests skip,
// unless ADAPTERTUNE_REQUIRE_REFERENCE is set (CI sets it, so that they cannot silently skip).
class PythonReference : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system((python_ + " -c 'import torch' > /dev/null 2>&1").c_str()) != 0) {
      if (std::getenv("ADAPTERTUNE_REQUIRE_REFERENCE") != nullptr) {
        FAIL() << python_ << " with torch is required (ADAPTERTUNE_REQUIRE_REFERENCE is set)";
      }
      GTEST_SKIP() << python_ << " cannot import torch: install Debian's python3-torch";
    }
    dir_ = fresh_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_EQ(run("make", dir_), 0);
  }
  int run(const std::string& mode, const std::string& dir) {
    return std::system((python_ + " " + script_ + " " + mode + " '" + dir + "'").c_str());
  }
  std::map<std::string, torch::Tensor> read(const std::string& path) {
    std::map<std::string, torch::Tensor> out;
    for (auto& [name, tensor] : load_safetensors(path)) out[name] = tensor;
    return out;
  }
  std::map<std::string, torch::Tensor> run_model(BertForSequenceClassification& model,
                                                 const std::string& inputs_path) {
    auto inputs = read(inputs_path);
    model->eval();
    torch::NoGradGuard no_grad;
    auto out = model->bert(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]);
    return {{"last_hidden_state", out.last_hidden_state},
            {"pooler_output", out.pooler_output},
            {"logits", model->classifier(out.pooler_output)}};
  }

  std::string python_ = "/usr/bin/python3";
  std::string script_ = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../python/bert_reference.py";
  std::string dir_;
};

TEST_F(PythonReference, LoadedModelMatchesReferenceOutputs) {
  LoadReport report;
  auto model = load_bert_for_sequence_classification(dir_, std::nullopt, &report);
  EXPECT_TRUE(report.missing.empty()) << report.summary();
  EXPECT_TRUE(report.unexpected.empty()) << report.summary();
  std::sort(report.ignored.begin(), report.ignored.end());
  EXPECT_EQ(report.ignored,
            (std::vector<std::string>{"bert.embeddings.position_ids", "cls.predictions.bias"}))
      << report.summary();
  EXPECT_EQ(model->head_config().num_labels, 3);
  EXPECT_EQ(model->head_config().id2label,
            (std::vector<std::string>{"contradiction", "entailment", "neutral"}));
  auto expected = read(dir_ + "/expected.safetensors");
  auto ours = run_model(model, dir_ + "/inputs.safetensors");
  for (const char* key : {"last_hidden_state", "pooler_output", "logits"}) {
    EXPECT_LT(max_abs_diff(ours[key], expected[key]), 1e-5) << key;
  }
}

TEST_F(PythonReference, SavedModelLoadsInTheReference) {
  auto model = load_bert_for_sequence_classification(dir_);
  const std::string out = fresh_dir("saved");
  save_pretrained(*model, out);
  // The reference recomputes from our files and compares with outputs we computed.
  NamedTensors expected;
  for (auto& [k, v] : run_model(model, dir_ + "/inputs.safetensors")) expected.emplace_back(k, v);
  save_safetensors(out + "/expected.safetensors", expected);
  write_file_atomic(out + "/inputs.safetensors", read_file(dir_ + "/inputs.safetensors"));
  EXPECT_EQ(run("check", out), 0);
  // And we read back exactly what we wrote.
  auto again = load_bert_for_sequence_classification(out);
  auto a = model->named_parameters();
  for (const auto& item : again->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), a[item.key()])) << item.key();
  }
  std::string config = read_file(out + "/config.json");
  EXPECT_NE(config.find("\"BertForSequenceClassification\""), std::string::npos);
  EXPECT_NE(config.find("\"num_labels\": 3"), std::string::npos);
}

TEST_F(PythonReference, ShardedCheckpointAndTfNamesLoadTheSameWeights) {
  NamedTensors all = read_hf_weights(dir_);
  // BertModel-style names (no "bert." prefix) with TF-era gamma/beta, split over two shards.
  NamedTensors first, second;
  std::string weight_map;
  for (size_t i = 0; i < all.size(); ++i) {
    std::string name = all[i].first;
    if (name.rfind("bert.", 0) == 0) name = name.substr(5);
    if (name.find("LayerNorm.weight") != std::string::npos)
      name.replace(name.size() - 6, 6, "gamma");
    if (name.find("LayerNorm.bias") != std::string::npos) name.replace(name.size() - 4, 4, "beta");
    const std::string shard =
        i % 2 ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
    (i % 2 ? second : first).emplace_back(name, all[i].second);
    weight_map += (weight_map.empty() ? "" : ",") + ("\"" + name + "\": \"" + shard + "\"");
  }
  const std::string sharded = fresh_dir("sharded");
  save_safetensors(sharded + "/model-00001-of-00002.safetensors", first);
  save_safetensors(sharded + "/model-00002-of-00002.safetensors", second);
  write_file_atomic(sharded + "/model.safetensors.index.json",
                    "{\"metadata\": {}, \"weight_map\": {" + weight_map + "}}");
  write_file_atomic(sharded + "/config.json", read_file(dir_ + "/config.json"));
  LoadReport report;
  BertModel base = load_bert_model(sharded, &report);
  EXPECT_TRUE(report.missing.empty()) << report.summary();
  // cls.predictions.bias, position_ids and the two classifier.* tensors (BertModel has no head).
  EXPECT_EQ(report.ignored.size(), 4u) << report.summary();
  auto expected = read(dir_ + "/expected.safetensors");
  auto inputs = read(dir_ + "/inputs.safetensors");
  base->eval();
  torch::NoGradGuard no_grad;
  auto out = base(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]);
  EXPECT_LT(max_abs_diff(out.last_hidden_state, expected["last_hidden_state"]), 1e-5);

  // An index that promises a tensor its shard lacks.
  write_file_atomic(sharded + "/model.safetensors.index.json",
                    "{\"weight_map\": {\"ghost.weight\": \"model-00001-of-00002.safetensors\"}}");
  EXPECT_ERROR_CONTAINS(read_hf_weights(sharded),
                        "tensor \"ghost.weight\" is listed in model-00001-of-00002.safetensors");
}

TEST(HfCheckpoint, BadCheckpointsGetClearErrors) {
  const std::string dir = fresh_dir("bad");
  BertConfig config = testing::tiny_config();
  config.save(dir + "/config.json");
  EXPECT_ERROR_CONTAINS(load_bert_model(dir), "no model.safetensors");

  BertModel model(config);
  NamedTensors tensors;
  for (const auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value());
  // A wrong shape names the tensor and both shapes.
  NamedTensors wrong = tensors;
  wrong[0].second = torch::zeros({7, 3});
  save_safetensors(dir + "/model.safetensors", wrong);
  EXPECT_ERROR_CONTAINS(load_bert_model(dir),
                        "tensor \"embeddings.word_embeddings.weight\" has shape [7, 3], the "
                        "model's \"embeddings.word_embeddings.weight\" needs [120, 32]");
  // A missing encoder tensor is an error; a missing pooler only a report entry.
  NamedTensors partial(tensors.begin(), tensors.end() - 2);  // drops pooler.dense.*
  partial.erase(partial.begin() + 5);                        // drops a layer-0 tensor
  save_safetensors(dir + "/model.safetensors", partial);
  EXPECT_ERROR_CONTAINS(load_bert_model(dir), "the checkpoint lacks 1 base-model tensors");
  NamedTensors no_pooler(tensors.begin(), tensors.end() - 2);
  no_pooler.emplace_back("mystery.weight", torch::zeros({2}));
  save_safetensors(dir + "/model.safetensors", no_pooler);
  LoadReport report;
  load_bert_model(dir, &report);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"pooler.dense.weight", "pooler.dense.bias"}));
  EXPECT_TRUE(report.missing_any(ParameterGroup::kPooler));
  EXPECT_FALSE(report.missing_any(ParameterGroup::kHead));
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"mystery.weight"});
  EXPECT_NE(report.summary().find("2 missing (pooler.dense.weight, pooler.dense.bias)"),
            std::string::npos)
      << report.summary();
  // The rule every loader applies: a missing pooler or head may be allowed, nothing else.
  EXPECT_NO_THROW(report.require_all_except(dir, {ParameterGroup::kPooler}));
  EXPECT_ERROR_CONTAINS(report.require_all_except(dir, {ParameterGroup::kHead}),
                        dir + ": the checkpoint lacks 2 base-model tensors: pooler.dense.weight");
  // The classifier and span-head loaders refuse a missing encoder tensor the same way.
  save_safetensors(dir + "/model.safetensors", partial);
  EXPECT_ERROR_CONTAINS(load_bert_for_sequence_classification(dir),
                        "the checkpoint lacks 1 base-model tensors: bert.encoder.layer.0.");
  EXPECT_ERROR_CONTAINS(load_bert_for_question_answering(dir),
                        "the checkpoint lacks 1 base-model tensors: bert.encoder.layer.0.");
}

TEST(HfCheckpoint, HeadOfAnotherTaskIsLeftOutAndReported) {
  const std::string dir = fresh_dir("head");
  BertForSequenceClassification three(testing::tiny_config(),
                                      HeadConfig::classification({"a", "b", "c"}));
  save_pretrained(*three, dir);
  LoadReport report;
  auto regression = load_bert_for_sequence_classification(dir, HeadConfig::regression(), &report);
  EXPECT_EQ(regression->classifier->weight.size(0), 1);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_TRUE(report.missing_any(ParameterGroup::kHead));
  EXPECT_FALSE(report.missing_any(ParameterGroup::kPooler));
  EXPECT_EQ(report.ignored, (std::vector<std::string>{"classifier.weight", "classifier.bias"}));
  EXPECT_TRUE(torch::equal(regression->bert->embeddings->word_embeddings->weight,
                           three->bert->embeddings->word_embeddings->weight));
}

// A span model loaded as a classifier: its span head has no place there, is reported, and its
// tensors are kept for a caller that puts the head around the BertModel (a Predictor).
TEST(HfCheckpoint, ASpanHeadLoadedAsAClassifierIsReportedAndKept) {
  const std::string dir = fresh_dir("span_as_classifier");
  BertForQuestionAnswering span(testing::tiny_config());
  save_pretrained(*span, dir);
  LoadReport report;
  load_bert_for_sequence_classification(dir, std::nullopt, &report);
  EXPECT_TRUE(report.ignored_span_head());
  ASSERT_EQ(report.span_head.size(), 2u);
  for (const auto& [name, tensor] : report.span_head) {
    const at::Tensor& saved =
        name == "qa_outputs.weight" ? span->qa_outputs->weight : span->qa_outputs->bias;
    EXPECT_TRUE(torch::equal(tensor, saved)) << name;
  }
  BertForSequenceClassification classifier(testing::tiny_config(), HeadConfig::regression());
  save_pretrained(*classifier, dir);
  load_bert_for_sequence_classification(dir, std::nullopt, &report);
  EXPECT_FALSE(report.ignored_span_head());
  EXPECT_TRUE(report.span_head.empty());
}

// The random-initialisation baseline takes the directory's config and head, and none of its
// weights; the same seed gives the same model.
TEST(HfCheckpoint, RandomInitialisationTakesTheConfigAndNoWeights) {
  const std::string dir = fresh_dir("random_init");
  BertConfig config = testing::tiny_config();
  config.hidden_size = 48;  // not the default: the config must come from the directory
  BertForSequenceClassification saved(config, HeadConfig::classification({"a", "b", "c"}));
  save_pretrained(*saved, dir);
  torch::manual_seed(7);
  BertForSequenceClassification first = init_bert_for_sequence_classification(dir);
  EXPECT_EQ(first->bert->config().hidden_size, 48);
  EXPECT_EQ(first->head_config().num_labels, 3);
  EXPECT_FALSE(first->bert->pooler_pretrained());
  EXPECT_FALSE(torch::equal(first->bert->embeddings->word_embeddings->weight,
                            saved->bert->embeddings->word_embeddings->weight));
  torch::manual_seed(7);
  BertForSequenceClassification second =
      init_bert_for_sequence_classification(dir, HeadConfig::regression());
  EXPECT_EQ(second->head_config().num_labels, 1);
  EXPECT_TRUE(torch::equal(first->bert->embeddings->word_embeddings->weight,
                           second->bert->embeddings->word_embeddings->weight));
  EXPECT_ERROR_CONTAINS(init_bert_for_sequence_classification(dir + "/none"), "config.json");

  // The same for a span model.
  torch::manual_seed(7);
  BertForQuestionAnswering span = init_bert_for_question_answering(dir);
  EXPECT_EQ(span->bert->config().hidden_size, 48);
  EXPECT_FALSE(torch::equal(span->bert->embeddings->word_embeddings->weight,
                            saved->bert->embeddings->word_embeddings->weight));
  torch::manual_seed(7);
  EXPECT_TRUE(torch::equal(init_bert_for_question_answering(dir)->qa_outputs->weight,
                           span->qa_outputs->weight));
  EXPECT_ERROR_CONTAINS(init_bert_for_question_answering(dir + "/none"), "config.json");
}

}  // namespace
}  // namespace adaptertune
