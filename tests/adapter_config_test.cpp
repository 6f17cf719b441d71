#include "adaptertune/adapter_config.h"

#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

// The adapter_config.json that AdapterHub's `adapters` library writes for a SeqBnConfig
// ("pfeiffer") adapter on bert-base-uncased.
const char* kAdapterHubPfeiffer = R"({
  "config": {
    "adapter_residual_before_ln": false,
    "cross_adapter": false,
    "dropout": 0.0,
    "factorized_phm_W": true,
    "factorized_phm_rule": false,
    "hypercomplex_nonlinearity": "glorot-uniform",
    "init_weights": "bert",
    "inv_adapter": null,
    "inv_adapter_reduction_factor": null,
    "is_parallel": false,
    "learn_phm": true,
    "leave_out": [],
    "ln_after": false,
    "ln_before": false,
    "mh_adapter": false,
    "non_linearity": "relu",
    "original_ln_after": true,
    "original_ln_before": true,
    "output_adapter": true,
    "phm_bias": true,
    "phm_c_init": "normal",
    "phm_dim": 4,
    "phm_init_range": 0.0001,
    "phm_layer": false,
    "phm_rank": 1,
    "reduction_factor": 16,
    "residual_before_ln": true,
    "scaling": 1.0,
    "shared_W_phm": false,
    "shared_phm_rule": true,
    "stochastic_depth": 0.0,
    "use_gating": false
  },
  "hidden_size": 768,
  "model_class": "BertForSequenceClassification",
  "model_name": "bert-base-uncased",
  "model_type": "bert",
  "name": "sst-2",
  "version": "0.2.0"
})";

TEST(AdapterConfig, PresetsFollowHoulsbyAndPfeiffer) {
  AdapterConfig h = AdapterConfig::houlsby();
  EXPECT_TRUE(h.mh_adapter);
  EXPECT_TRUE(h.output_adapter);
  EXPECT_EQ(h.adapters_per_layer(), 2);
  EXPECT_EQ(h.non_linearity, "swish");
  EXPECT_FALSE(h.original_ln_before);
  EXPECT_TRUE(h.original_ln_after);
  EXPECT_EQ(h.init, AdapterInit::kHoulsby);
  EXPECT_DOUBLE_EQ(h.init_std, 1e-2);
  AdapterConfig p = AdapterConfig::pfeiffer();
  EXPECT_FALSE(p.mh_adapter);
  EXPECT_TRUE(p.output_adapter);
  EXPECT_EQ(p.adapters_per_layer(), 1);
  EXPECT_EQ(p.non_linearity, "relu");
  EXPECT_TRUE(p.original_ln_before);
  EXPECT_TRUE(p.original_ln_after);
  EXPECT_TRUE(p.residual_before_ln);
  EXPECT_EQ(AdapterConfig::preset("pfeiffer"), p);
  EXPECT_ERROR_CONTAINS(AdapterConfig::preset("lora"), "unknown adapter preset \"lora\"");
}

TEST(AdapterConfig, BottleneckSizeFromReductionFactorOrExplicitSize) {
  AdapterConfig config = AdapterConfig::houlsby();
  EXPECT_EQ(config.bottleneck_size(768), 48);
  config.reduction_factor = 2;
  EXPECT_EQ(config.bottleneck_size(768), 384);
  config.adapter_size = 64;
  EXPECT_EQ(config.bottleneck_size(768), 64);
  config.adapter_size.reset();
  config.reduction_factor = 1000;
  EXPECT_ERROR_CONTAINS(config.bottleneck_size(768), "must be at least 1");
}

TEST(AdapterConfig, JsonRoundTrip) {
  for (AdapterConfig config : {AdapterConfig::houlsby(), AdapterConfig::pfeiffer()}) {
    EXPECT_EQ(AdapterConfig::from_json_string(config.to_json_string()), config);
    config.adapter_size = 8;
    config.init = AdapterInit::kMamAdapter;
    config.dropout = 0.1;
    config.scaling = 2.0;
    EXPECT_EQ(AdapterConfig::from_json_string(config.to_json_string()), config);
  }
}

TEST(AdapterConfig, ReadsAdapterHubAdapterConfigJson) {
  AdapterConfig config =
      AdapterConfig::from_json_string(kAdapterHubPfeiffer, "adapter_config.json");
  AdapterConfig expected = AdapterConfig::pfeiffer();
  expected.init = AdapterInit::kBert;
  EXPECT_EQ(config, expected);
}

// A value nested a million arrays deep is refused as read, before anything recurses into it (the
// error message's copy of the value overflowed the stack: SIGSEGV, not an Error).
TEST(AdapterConfig, AValueNestedTooDeepIsAnErrorNotACrash) {
  const std::string deep = std::string(1000000, '[') + std::string(1000000, ']');
  EXPECT_ERROR_CONTAINS(
      AdapterConfig::from_json_string(R"({"ln_after": )" + deep + "}", "a.json"),
      "a.json: JSON nested deeper than 100 levels of arrays and objects (at byte 112)");
}

TEST(AdapterConfig, UnknownAndUnsupportedKeysAreReported) {
  EXPECT_ERROR_CONTAINS(AdapterConfig::from_json_string(R"({"reduction_factr": 16})", "a.json"),
                        "a.json: unknown key(s) 'reduction_factr'");
  EXPECT_ERROR_CONTAINS(AdapterConfig::from_json_string(R"({"ln_after": true})", "a.json"),
                        "a.json: 'ln_after' = true is not supported");
  EXPECT_ERROR_CONTAINS(AdapterConfig::from_json_string(R"({"leave_out": "0-5"})", "a.json"),
                        "key 'leave_out' must be a list of layer indices");
  // Integers beyond int64_t are no layer index or size, not ones wrapped to a negative.
  EXPECT_ERROR_CONTAINS(
      AdapterConfig::from_json_string(R"({"leave_out": [18446744073709551615]})", "a.json"),
      "key 'leave_out' must be a list of layer indices");
  EXPECT_ERROR_CONTAINS(
      AdapterConfig::from_json_string(R"({"adapter_size": 9223372036854775808})", "a.json"),
      "key 'adapter_size' must be an integer, found 9223372036854775808");
  EXPECT_ERROR_CONTAINS(
      AdapterConfig::from_json_string(R"({"reduction_factor": {"default": 16}})", "a.json"),
      "key 'reduction_factor' must be a number");
  EXPECT_ERROR_CONTAINS(AdapterConfig::from_json_string(R"({"reduction_factor": -2})", "a.json"),
                        "'reduction_factor' must be positive, got -2");
  // The weights are float32: what they are initialised or scaled with must fit a float.
  EXPECT_ERROR_CONTAINS(AdapterConfig::from_json_string(R"({"init_std": 1e300})", "a.json"),
                        "a.json: AdapterConfig: 'init_std' must be positive and at most "
                        "3.40282e+38, got 1e+300");
  EXPECT_ERROR_CONTAINS(AdapterConfig::from_json_string(R"({"scaling": -1e39})", "a.json"),
                        "'scaling' must be finite and at most 3.40282e+38 in size, got -1e+39");
  EXPECT_ERROR_CONTAINS(AdapterConfig::from_json_string(R"({"non_linearity": "mish"})", "a.json"),
                        "unknown activation \"mish\"");
  EXPECT_ERROR_CONTAINS(AdapterConfig::from_json_string(R"({"init_weights": "xavier"})", "a.json"),
                        "'init_weights' must be");
  EXPECT_ERROR_CONTAINS(
      AdapterConfig::from_json_string(R"({"mh_adapter": false, "output_adapter": false})"),
      "at least one of 'mh_adapter' and 'output_adapter'");
}

}  // namespace
}  // namespace adaptertune
