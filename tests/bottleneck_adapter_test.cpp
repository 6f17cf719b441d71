#include "adaptertune/adapters/bottleneck_adapter.h"

#include "adaptertune/bert_model.h"
#include "adaptertune/error.h"
#include "adaptertune/layers/sublayer_output.h"
#include "adaptertune/precision.h"
#include "linear.h"
#include "onednn_products.h"
#include "test_util.h"

namespace adaptertune {
namespace {

using testing::max_abs_diff;
using testing::tiny_config;

class BottleneckAdapterTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(BottleneckAdapterTest);

int64_t count_elements(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

TEST(BottleneckAdapter, HasAdapterHubParameterNamesAndCount) {
  AdapterConfig config = AdapterConfig::houlsby();
  config.adapter_size = 48;
  BottleneckAdapter adapter(768, config);
  std::vector<std::string> names;
  for (const auto& item : adapter->named_parameters()) names.push_back(item.key());
  EXPECT_EQ(names, (std::vector<std::string>{"adapter_down.0.weight", "adapter_down.0.bias",
                                             "adapter_up.weight", "adapter_up.bias"}));
  EXPECT_EQ(count_elements(*adapter), 74544);
  EXPECT_EQ(bottleneck_adapter_parameter_count(768, 48), 74544);
  EXPECT_EQ(adapter->bottleneck_size(), 48);
}

TEST(BottleneckAdapter, HoulsbyInitIsSmallTruncatedNormalWithZeroBiases) {
  BottleneckAdapter adapter(768, AdapterConfig::houlsby());
  auto down = adapter->adapter_down[0]->as<torch::nn::Linear>();
  for (const auto& w : {down->weight, adapter->adapter_up->weight}) {
    EXPECT_LE(w.abs().max().item<double>(), 0.02 + 1e-9);  // cut at 2 std
    // The std of a normal truncated at ±2σ is 0.8796σ.
    EXPECT_NEAR(w.std().item<double>(), 0.008796, 0.0004);
  }
  EXPECT_TRUE(torch::equal(down->bias, torch::zeros_like(down->bias)));
  EXPECT_TRUE(
      torch::equal(adapter->adapter_up->bias, torch::zeros_like(adapter->adapter_up->bias)));
  AdapterConfig mam = AdapterConfig::houlsby();
  mam.init = AdapterInit::kMamAdapter;
  BottleneckAdapter zero_up(768, mam);
  EXPECT_EQ(zero_up->adapter_up->weight.abs().max().item<double>(), 0.0);
  EXPECT_GT(zero_up->adapter_down[0]->as<torch::nn::Linear>()->weight.abs().max().item<double>(),
            0.0);
}

// The sublayer formulas of AdapterConfig's documentation, written out with plain tensor ops.
TEST_P(BottleneckAdapterTest, PlacementMatchesHoulsbyAndPfeifferFormulas) {
  for (const std::string preset : {"houlsby", "pfeiffer"}) {
    AdapterConfig config = AdapterConfig::preset(preset);
    config.init = AdapterInit::kBert;  // large enough weights for the adapter to matter
    config.adapter_size = 4;
    SublayerOutput out(SublayerOutputOptions(16, 8));
    out->add_adapter("a", config);
    out->to(device());
    out->eval();
    torch::NoGradGuard no_grad;
    // Scale the adapter up so that a wrong formula cannot hide under a small contribution.
    auto adapter = std::dynamic_pointer_cast<BottleneckAdapterImpl>(out->adapters["a"]);
    adapter->adapter_up->weight.mul_(50);
    auto hidden = torch::randn({2, 3, 16}, device());
    auto input = torch::randn({2, 3, 8}, device());
    // The layer's own product (linear.h: oneDNN for float32 on the CPU), so that the base-only
    // output below can be compared bit for bit.
    auto h = linear(out->dense, hidden);
    auto ln = [&](const torch::Tensor& x) { return out->LayerNorm(x); };
    auto down = adapter->adapter_down[0]->as<torch::nn::Linear>();
    auto bottleneck = [&](const torch::Tensor& x) {
      auto z = down->forward(x);
      z = preset == "houlsby" ? z * torch::sigmoid(z) : torch::relu(z);
      return adapter->adapter_up(z);
    };
    torch::Tensor expected = preset == "houlsby" ? ln(h + bottleneck(h) + input)
                                                 : ln(h + bottleneck(ln(h + input)) + input);
    torch::Tensor got = out(hidden, input, TaskRouting::whole_batch("a"));
    EXPECT_LT(max_abs_diff(got, expected), 1e-5) << preset;
    // And the adapter really changes the output.
    EXPECT_GT(max_abs_diff(got, ln(h + input)), 1e-2) << preset;
    // Without the task the sublayer is the plain base.
    EXPECT_TRUE(torch::equal(out(hidden, input), ln(h + input))) << preset;
  }
}

TEST_P(BottleneckAdapterTest, FreshAdaptersLeaveTheModelNearlyUnchanged) {
  for (const std::string preset : {"houlsby", "pfeiffer"}) {
    BertModel model(tiny_config());
    model->to(device());
    model->eval();
    auto input = torch::randint(1, 120, {4, 12}, torch::kLong).to(device());
    torch::NoGradGuard no_grad;
    auto base = model(input);
    model->add_adapter("fresh", AdapterConfig::preset(preset));
    auto adapted = model(input);
    // Stated tolerance: with std 1e-2 init the adapters move hidden states (unit scale after
    // LayerNorm) by less than 1e-2.
    double diff = max_abs_diff(base.last_hidden_state, adapted.last_hidden_state);
    EXPECT_LT(diff, 1e-2) << preset;
    EXPECT_GT(diff, 0.0) << preset << ": the adapter must be in the forward pass";
    EXPECT_LT(max_abs_diff(base.pooler_output, adapted.pooler_output), 1e-2) << preset;
  }
}

TEST_P(BottleneckAdapterTest, ZeroInitAdaptersAreExactlyTheIdentity) {
  for (const std::string preset : {"houlsby", "pfeiffer"}) {
    BertModel model(tiny_config());
    model->to(device());
    model->eval();
    auto input = torch::randint(1, 120, {3, 10}, torch::kLong).to(device());
    torch::NoGradGuard no_grad;
    auto base = model(input).last_hidden_state;
    AdapterConfig config = AdapterConfig::preset(preset);
    config.init = AdapterInit::kMamAdapter;
    model->add_adapter("zero", config);
    EXPECT_TRUE(torch::equal(base, model(input).last_hidden_state)) << preset;
  }
}

TEST_P(BottleneckAdapterTest, SwitchingAndRemovingAdapters) {
  BertModel model(tiny_config());
  model->to(device());
  model->eval();
  auto input = torch::randint(1, 120, {2, 6}, torch::kLong).to(device());
  torch::NoGradGuard no_grad;
  auto base = model(input).last_hidden_state;
  AdapterConfig config = AdapterConfig::houlsby();
  config.init = AdapterInit::kBert;
  model->add_adapter("task_a", config);
  model->add_adapter("task_b", AdapterConfig::pfeiffer());
  EXPECT_EQ(model->active_adapter(), "task_a");  // the first one added
  EXPECT_EQ(model->adapter_names(), (std::vector<std::string>{"task_a", "task_b"}));
  auto with_a = model(input).last_hidden_state;
  model->set_active_adapter("task_b");
  auto with_b = model(input).last_hidden_state;
  EXPECT_GT(max_abs_diff(with_a, with_b), 1e-4);
  model->set_active_adapter(std::nullopt);
  EXPECT_TRUE(torch::equal(model(input).last_hidden_state, base));
  model->set_active_adapter("task_a");
  EXPECT_TRUE(torch::equal(model(input).last_hidden_state, with_a));
  model->remove_adapter("task_a");
  EXPECT_FALSE(model->active_adapter().has_value());
  EXPECT_TRUE(torch::equal(model(input).last_hidden_state, base));
  for (const auto& item : model->named_parameters()) {
    EXPECT_EQ(item.key().find("task_a"), std::string::npos) << item.key();
  }
}

TEST(BottleneckAdapterNames, AdaptersSitWhereAdapterHubPutsThem) {
  BertModel model(tiny_config());
  model->add_adapter("sst2", AdapterConfig::houlsby());
  model->add_adapter("rte", AdapterConfig::pfeiffer());
  std::set<std::string> names;
  for (const auto& item : model->named_parameters()) names.insert(item.key());
  for (const char* key : {"encoder.layer.0.output.adapters.sst2.adapter_down.0.weight",
                          "encoder.layer.0.output.adapters.sst2.adapter_up.bias",
                          "encoder.layer.1.attention.output.adapters.sst2.adapter_down.0.bias",
                          "encoder.layer.1.output.adapters.rte.adapter_up.weight"}) {
    EXPECT_EQ(names.count(key), 1u) << key;
  }
  // Pfeiffer has no attention adapter.
  EXPECT_EQ(names.count("encoder.layer.0.attention.output.adapters.rte.adapter_up.weight"), 0u);
}

TEST(BottleneckAdapterErrors, BadNamesAndSizesAreRejected) {
  BertModel model(tiny_config());
  model->add_adapter("a", AdapterConfig::houlsby());
  EXPECT_ERROR_CONTAINS(model->add_adapter("a", AdapterConfig::houlsby()),
                        "adapter \"a\" already exists");
  EXPECT_ERROR_CONTAINS(model->add_adapter("x.y", AdapterConfig::houlsby()), "contain no '.'");
  // Names are written into JSON (adapter_config.json, run.json), which holds UTF-8 only.
  EXPECT_ERROR_CONTAINS(model->add_adapter("x\xffy", AdapterConfig::houlsby()),
                        "adapter name: invalid UTF-8 at byte 1");
  EXPECT_ERROR_CONTAINS(model->set_active_adapter("missing"), "no adapter named \"missing\"");
  EXPECT_ERROR_CONTAINS(model->remove_adapter("missing"), "no adapter named \"missing\"");
  AdapterConfig tiny = AdapterConfig::houlsby();
  tiny.reduction_factor = 64;  // 32 / 64 rounds to 0
  EXPECT_ERROR_CONTAINS(model->add_adapter("b", tiny), "must be at least 1");
  EXPECT_EQ(model->adapter_names(), std::vector<std::string>{"a"});
}

// A pack's adapter_config.json decides the bottleneck: a reduction_factor near zero asked
// LibTorch for terabytes (its allocator's error escaped), or, nearer still, converted a double
// beyond int64 (undefined behaviour). Either is named, and the model keeps only what it had.
TEST(BottleneckAdapterErrors, BottleneckTooLargeForMemoryIsNamedAndAddsNothing) {
  BertModel model(tiny_config());
  model->add_adapter("a", AdapterConfig::houlsby());
  const auto parameters_before = model->named_parameters().size();
  AdapterConfig huge = AdapterConfig::houlsby();
  huge.reduction_factor = 1e-12;  // 32 / 1e-12: a bottleneck of 3.2e13, 4 PB per product
  EXPECT_ERROR_CONTAINS(model->add_adapter("huge", huge),
                        "adapter \"huge\": not enough memory for its weights (bottleneck "
                        "32000000000000 at hidden size 32: about 8192000.0 GB in float32 per "
                        "adapter); raise reduction_factor");
  huge.reduction_factor = 1e-30;
  EXPECT_ERROR_CONTAINS(model->add_adapter("huge", huge),
                        "bottleneck size for hidden_size 32 is 3.2e+31 (reduction_factor "
                        "1e-30); no memory holds it");
  EXPECT_EQ(model->adapter_names(), std::vector<std::string>{"a"});
  EXPECT_EQ(model->named_parameters().size(), parameters_before);
  EXPECT_EQ(model->active_adapter(), "a");
  model->add_adapter("huge", AdapterConfig::houlsby());  // the name is free again
}

// Evaluation in bfloat16 under InferenceMode: the additions after the last product of a sublayer
// (the adapter's up projection, or the dense layer where no adapter sits) run inside it, on the
// float32 sums. Outside InferenceMode the sublayer gives the unfused steps' bits; inside it stays
// within the bfloat16 roundings that the fusion skips.
TEST(BottleneckAdapterEvaluation, BFloat16AdditionsFuseIntoTheLastProduct) {
  torch::manual_seed(31);
  AdapterConfig no_ln_after = AdapterConfig::houlsby();
  no_ln_after.original_ln_after = false;
  AdapterConfig scaled = AdapterConfig::pfeiffer();
  scaled.scaling = 0.5;
  for (const AdapterConfig& preset :
       {AdapterConfig::houlsby(), AdapterConfig::pfeiffer(), no_ln_after, scaled}) {
    SCOPED_TRACE(preset.to_json_string());
    AdapterConfig config = preset;
    config.init = AdapterInit::kBert;
    config.adapter_size = 8;
    SublayerOutput out(SublayerOutputOptions(64, 32));
    out->add_adapter("a", config);
    out->eval();
    auto adapter = std::dynamic_pointer_cast<BottleneckAdapterImpl>(out->adapters["a"]);
    const auto hidden = torch::randn({2, 5, 64});
    const auto input = torch::randn({2, 5, 32});
    AutocastGuard autocast(torch::kCPU, Precision::kBFloat16);
    torch::Tensor unfused, base_unfused;
    {
      torch::NoGradGuard no_grad;
      const torch::Tensor projected = linear(out->dense, hidden);
      unfused = adapter->finish(adapter->residual_output(projected, input, out->LayerNorm), input,
                                out->LayerNorm);
      EXPECT_TRUE(torch::equal(out(hidden, input, TaskRouting::whole_batch("a")), unfused));
      base_unfused = out->LayerNorm(projected + input);
      EXPECT_TRUE(torch::equal(out(hidden, input), base_unfused));
    }
    c10::InferenceMode inference;
    const torch::Tensor w = out->dense->weight;
    if (!onednn_linear_add_applies(hidden, w, out->dense->bias, {input})) {
      GTEST_SKIP() << "no oneDNN bfloat16 product here";
    }
    const torch::Tensor fused = out(hidden, input, TaskRouting::whole_batch("a"));
    ASSERT_EQ(fused.scalar_type(), unfused.scalar_type());
    EXPECT_LT(max_abs_diff(fused.to(torch::kFloat), unfused.to(torch::kFloat)), 0.05);
    // Where the sum feeds the float32 LayerNorm, the bfloat16 rounding of the adapter's output that
    // the fusion skips shows. Without it the result is bfloat16 either way, and one rounding of
    // the small adapter output before adding the skip connection may leave every element as it is.
    if (config.original_ln_after) {
      EXPECT_FALSE(torch::equal(fused, unfused)) << "nothing fused?";
    }
    const torch::Tensor base = out(hidden, input);
    EXPECT_LT(max_abs_diff(base, base_unfused), 0.05);
    EXPECT_FALSE(torch::equal(base, base_unfused)) << "nothing fused?";
  }
}

TEST(BottleneckAdapterDtype, AdaptersFollowTheModelsDeviceAndDtype) {
  BertModel model(tiny_config());
  model->to(torch::kDouble);
  model->add_adapter("a", AdapterConfig::houlsby());
  for (const auto& p : model->parameters()) EXPECT_EQ(p.scalar_type(), torch::kDouble);
}

}  // namespace
}  // namespace adaptertune
