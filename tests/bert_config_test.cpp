#include "adaptertune/bert_config.h"

#include <cstdio>
#include <fstream>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "test_util.h"

namespace adaptertune {
namespace {

// A config.json as Hugging Face's save_pretrained writes it for bert-base-uncased.
const char* kHuggingFaceBertBase = R"({
  "architectures": ["BertForMaskedLM"],
  "attention_probs_dropout_prob": 0.1,
  "gradient_checkpointing": false,
  "hidden_act": "gelu",
  "hidden_dropout_prob": 0.1,
  "hidden_size": 768,
  "initializer_range": 0.02,
  "intermediate_size": 3072,
  "layer_norm_eps": 1e-12,
  "max_position_embeddings": 512,
  "model_type": "bert",
  "num_attention_heads": 12,
  "num_hidden_layers": 12,
  "pad_token_id": 0,
  "position_embedding_type": "absolute",
  "transformers_version": "4.6.0.dev0",
  "type_vocab_size": 2,
  "use_cache": true,
  "vocab_size": 30522
})";

TEST(BertConfig, ReadsHuggingFaceBertBaseConfig) {
  BertConfig config = BertConfig::from_json_string(kHuggingFaceBertBase, "config.json");
  EXPECT_EQ(config, BertConfig::bert_base());
  EXPECT_EQ(config.head_size(), 64);
}

TEST(BertConfig, JsonRoundTripKeepsEveryField) {
  BertConfig config = testing::tiny_config();
  config.hidden_act = "gelu_new";
  config.layer_norm_eps = 1e-6;
  config.hidden_dropout_prob = 0.25;
  BertConfig back = BertConfig::from_json_string(config.to_json_string());
  EXPECT_EQ(back, config);
  BertConfig large = BertConfig::from_json_string(BertConfig::bert_large().to_json_string());
  EXPECT_EQ(large.num_hidden_layers, 24);
  EXPECT_EQ(large.hidden_size, 1024);
}

TEST(BertConfig, UnknownKeyIsReportedWithSource) {
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"hiden_size": 768})", "my.json"),
                        "my.json: unknown key(s) 'hiden_size'");
}

TEST(BertConfig, HiddenSizeNotDivisibleByHeadsIsRejected) {
  EXPECT_ERROR_CONTAINS(
      BertConfig::from_json_string(R"({"hidden_size": 100, "num_attention_heads": 12})", "c.json"),
      "c.json: BertConfig: 'hidden_size' must be a multiple of num_attention_heads (12), got 100");
}

TEST(BertConfig, WrongTypeNamesTheKey) {
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"hidden_size": "768"})", "c.json"),
                        "c.json: key 'hidden_size' must be an integer, found \"768\"");
  // Whole numbers beyond int64_t (the parser reads them as floats) are no integers here.
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"hidden_size": 1e30})", "c.json"),
                        "c.json: key 'hidden_size' must be an integer, found 1e+30");
  EXPECT_ERROR_CONTAINS(
      BertConfig::from_json_string(R"({"hidden_size": 99999999999999999999})", "c.json"),
      "c.json: key 'hidden_size' must be an integer, found 1e+20");
  // The parser keeps integers from 2^63 to 2^64 - 1 unsigned; none is an int64_t.
  EXPECT_ERROR_CONTAINS(
      BertConfig::from_json_string(R"({"hidden_size": 18446744073709551615})", "c.json"),
      "c.json: key 'hidden_size' must be an integer, found 18446744073709551615");
  EXPECT_EQ(BertConfig::from_json_string(R"({"max_position_embeddings": 9223372036854775807})")
                .max_position_embeddings,
            INT64_MAX);
  EXPECT_EQ(BertConfig::from_json_string(R"({"hidden_size": 768.0})").hidden_size, 768);
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"hidden_dropout_prob": 1.5})"),
                        "'hidden_dropout_prob' must be in [0, 1), got 1.5");
  // Numbers as given: not std::to_string's "-0.000000" for -1e-12 nor its 301 digits for 1e300.
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"layer_norm_eps": -1e-12})"),
                        "'layer_norm_eps' must be positive, got -1e-12");
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"initializer_range": 0})"),
                        "'initializer_range' must be positive, got 0");
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"attention_probs_dropout_prob": 1e300})"),
                        "'attention_probs_dropout_prob' must be in [0, 1), got 1e+300");
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"hidden_act": "gelu2"})"),
                        "unknown activation \"gelu2\"");
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"model_type": "roberta"})"),
                        "'model_type' must be \"bert\"");
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string(R"({"num_hidden_layers": 0})"),
                        "'num_hidden_layers' must be positive");
}

TEST(BertConfig, InvalidJsonNamesSourceAndOffset) {
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string("{\"hidden_size\": 7", "broken.json"),
                        "broken.json: invalid JSON at byte");
  // A number beyond a double's range is the parser's one complaint that is no parse_error.
  EXPECT_ERROR_CONTAINS(
      BertConfig::from_json_string(R"({"layer_norm_eps": 1e400})", "big.json"),
      "big.json: invalid JSON: [json.exception.out_of_range.406] number overflow");
  EXPECT_ERROR_CONTAINS(BertConfig::from_json_string("[1, 2]", "list.json"),
                        "list.json: expected a JSON object");
}

TEST(BertConfig, MissingFileNamesThePath) {
  EXPECT_ERROR_CONTAINS(BertConfig::from_file("/nonexistent/dir/config.json"),
                        "/nonexistent/dir/config.json: cannot open");
}

TEST(BertConfig, SaveThenLoadFromFile) {
  std::string path = ::testing::TempDir() + "bert_config_test_config.json";
  BertConfig config = testing::tiny_config();
  config.save(path);
  EXPECT_EQ(BertConfig::from_file(path), config);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace adaptertune
