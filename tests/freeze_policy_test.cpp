#include "adaptertune/training/freeze_policy.h"

#include <map>

#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

using testing::tiny_config;

class FreezePolicyTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(FreezePolicyTest);

TEST(FreezePolicy, ClassifiesHuggingFaceAndAdapterHubNames) {
  EXPECT_EQ(classify_parameter("bert.embeddings.word_embeddings.weight"),
            ParameterGroup::kEmbeddings);
  EXPECT_EQ(classify_parameter("embeddings.LayerNorm.weight"), ParameterGroup::kLayerNorm);
  EXPECT_EQ(classify_parameter("encoder.layer.3.attention.self.query.weight"),
            ParameterGroup::kAttention);
  EXPECT_EQ(classify_parameter("encoder.layer.3.attention.output.dense.bias"),
            ParameterGroup::kAttention);
  EXPECT_EQ(classify_parameter("bert.encoder.layer.3.attention.output.LayerNorm.bias"),
            ParameterGroup::kLayerNorm);
  EXPECT_EQ(classify_parameter("encoder.layer.0.intermediate.dense.weight"),
            ParameterGroup::kFeedForward);
  EXPECT_EQ(classify_parameter("encoder.layer.0.output.dense.weight"),
            ParameterGroup::kFeedForward);
  EXPECT_EQ(classify_parameter("bert.encoder.layer.0.output.adapters.sst2.adapter_up.weight"),
            ParameterGroup::kAdapter);
  EXPECT_EQ(classify_parameter("encoder.layer.0.attention.output.adapters.a.adapter_down.0.bias"),
            ParameterGroup::kAdapter);
  EXPECT_EQ(classify_parameter("bert.pooler.dense.weight"), ParameterGroup::kPooler);
  EXPECT_EQ(classify_parameter("classifier.bias"), ParameterGroup::kHead);
  EXPECT_ERROR_CONTAINS(classify_parameter("decoder.weight"), "\"decoder.weight\" belongs to no");
  // A task's copies belong to the group of what they copy.
  EXPECT_EQ(classify_parameter("bert.encoder.layer.1.output.tasks.sst2.LayerNorm.weight"),
            ParameterGroup::kLayerNorm);
  EXPECT_EQ(classify_parameter("bert.pooler.tasks.sst2.dense.bias"), ParameterGroup::kPooler);
  EXPECT_EQ(classify_parameter("tasks.sst2.classifier.weight"), ParameterGroup::kHead);
}

TEST(ParameterNames, TaskOwnershipAndSharedNames) {
  EXPECT_EQ(parameter_task("bert.encoder.layer.0.output.adapters.sst2.adapter_up.weight"), "sst2");
  EXPECT_EQ(parameter_task("bert.embeddings.tasks.rte.LayerNorm.bias"), "rte");
  EXPECT_EQ(parameter_task("tasks.rte.classifier.weight"), "rte");
  EXPECT_EQ(parameter_task("bert.embeddings.LayerNorm.bias"), std::nullopt);
  EXPECT_EQ(parameter_task("classifier.weight"), std::nullopt);
  EXPECT_EQ(shared_parameter_name("bert.encoder.layer.1.attention.output.tasks.a.LayerNorm.weight"),
            "bert.encoder.layer.1.attention.output.LayerNorm.weight");
  EXPECT_EQ(shared_parameter_name("tasks.a.classifier.bias"), "classifier.bias");
  EXPECT_EQ(shared_parameter_name("bert.pooler.dense.bias"), "bert.pooler.dense.bias");
  EXPECT_TRUE(is_task_copy_parameter("bert.pooler.tasks.a.dense.bias"));
  EXPECT_FALSE(is_task_copy_parameter("bert.encoder.layer.0.output.adapters.a.adapter_up.bias"));
  EXPECT_EQ(rename_task_parameter("bert.pooler.tasks.a.dense.bias", "a", "b"),
            "bert.pooler.tasks.b.dense.bias");
  EXPECT_EQ(rename_task_parameter("encoder.layer.0.output.adapters.a.adapter_up.bias", "a", "b"),
            "encoder.layer.0.output.adapters.b.adapter_up.bias");
  EXPECT_EQ(rename_task_parameter("encoder.layer.0.output.adapters.ab.adapter_up.bias", "a", "b"),
            "encoder.layer.0.output.adapters.ab.adapter_up.bias");
}

TEST(FreezePolicy, ModesTrainWhatTheySay) {
  using G = ParameterGroup;
  auto trained = [](const FreezePolicy& policy) {
    std::vector<G> out;
    for (G g : all_parameter_groups()) {
      if (policy.trains(g)) out.push_back(g);
    }
    return out;
  };
  EXPECT_EQ(trained(FreezePolicy{}), (std::vector<G>{G::kLayerNorm, G::kAdapter, G::kHead}));
  EXPECT_EQ(trained(FreezePolicy::from_name("adapters-head")),
            (std::vector<G>{G::kAdapter, G::kHead}));
  EXPECT_EQ(trained(FreezePolicy::from_name("head")), (std::vector<G>{G::kHead}));
  EXPECT_EQ(trained(FreezePolicy::from_name("full")).size(), all_parameter_groups().size());
  FreezePolicy with_pooler;
  with_pooler.train_pooler = true;
  EXPECT_EQ(trained(with_pooler),
            (std::vector<G>{G::kLayerNorm, G::kAdapter, G::kPooler, G::kHead}));
  EXPECT_EQ(FreezePolicy::from_name("adapters-head").name(), "adapters-head");
  EXPECT_ERROR_CONTAINS(FreezePolicy::from_name("lora"), "unknown training mode \"lora\"");
}

// Houlsby et al.'s baseline: the top K layers (attention, feed-forward, their LayerNorms), the
// pooler and the head train; the embeddings (their LayerNorm too) and the lower layers do not.
TEST(FreezePolicy, TopLayersTrainsTheTopKLayersPoolerAndHead) {
  EXPECT_EQ(encoder_layer_of("bert.encoder.layer.12.output.dense.weight"), 12);
  EXPECT_EQ(encoder_layer_of("bert.encoder.layer.1.output.tasks.a.LayerNorm.bias"), 1);
  EXPECT_EQ(encoder_layer_of("bert.embeddings.LayerNorm.weight"), std::nullopt);
  EXPECT_EQ(encoder_layer_of("classifier.weight"), std::nullopt);

  BertConfig config = tiny_config();
  config.num_hidden_layers = 4;
  BertForSequenceClassification model(config, HeadConfig{});
  FreezePolicy policy = FreezePolicy::from_name("top-k");
  EXPECT_EQ(policy.name(), "top-k");
  EXPECT_ERROR_CONTAINS(apply_freeze_policy(*model, policy),
                        "top_layers is 0, expected 1 to the model's 4 encoder layers");
  policy = FreezePolicy::from_name("top-2");
  EXPECT_EQ(policy.top_layers, 2);
  EXPECT_EQ(policy.name(), "top-2");
  int64_t expected = 0;
  for (const auto& item : model->named_parameters()) {
    const auto layer = encoder_layer_of(item.key());
    const ParameterGroup group = classify_parameter(item.key());
    if ((layer && *layer >= 2) || group == ParameterGroup::kPooler ||
        group == ParameterGroup::kHead) {
      expected += item.value().numel();
    }
  }
  EXPECT_EQ(apply_freeze_policy(*model, policy), expected);
  for (const auto& item : model->named_parameters()) {
    const auto layer = encoder_layer_of(item.key());
    const bool head_or_pooler = classify_parameter(item.key()) == ParameterGroup::kHead ||
                                classify_parameter(item.key()) == ParameterGroup::kPooler;
    EXPECT_EQ(item.value().requires_grad(), (layer && *layer >= 2) || head_or_pooler) << item.key();
  }
  policy.top_layers = 5;
  EXPECT_ERROR_CONTAINS(apply_freeze_policy(*model, policy), "top_layers is 5, expected 1 to");
  EXPECT_ERROR_CONTAINS(check_policy_trains_adapter(FreezePolicy::from_name("top-1"), "a"),
                        "training mode \"top-1\" with adapter \"a\" would freeze the adapter");
  EXPECT_ERROR_CONTAINS(FreezePolicy::from_name("top-x"),
                        "expected adapters, adapters-head, "
                        "full, head or top-k");
}

TEST_P(FreezePolicyTest, OneStepChangesOnlyTrainableTensorsAndFrozenOnesGetNoGrad) {
  BertForSequenceClassification model(tiny_config(), HeadConfig{});
  model->bert->add_adapter("task", AdapterConfig::houlsby());
  model->to(device());
  const int64_t trainable = prepare_task_training(*model, "task", FreezePolicy{});
  std::map<std::string, torch::Tensor> before;
  for (const auto& item : model->named_parameters()) before[item.key()] = item.value().clone();

  torch::optim::AdamW optimizer(trainable_parameters(*model), torch::optim::AdamWOptions(1e-3));
  int64_t counted = 0;
  for (const auto& p : trainable_parameters(*model)) counted += p.numel();
  EXPECT_EQ(counted, trainable);

  auto input = torch::randint(1, 120, {4, 9}, torch::kLong).to(device());
  auto labels = torch::tensor({0, 1, 1, 0}, torch::kLong).to(device());
  optimizer.zero_grad();
  model->loss(model(input), labels).backward();
  optimizer.step();

  int frozen_count = 0, trained_count = 0;
  for (const auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    // Only the task's own tensors: its adapters, its LayerNorm copies, its head.
    const bool should_train = parameter_task(name) == "task";
    if (should_train && name.find(".tasks.task.") != std::string::npos) {
      const ParameterGroup group = classify_parameter(name);
      EXPECT_TRUE(group == ParameterGroup::kLayerNorm) << name;
    }
    EXPECT_EQ(item.value().requires_grad(), should_train) << name;
    if (should_train) {
      ++trained_count;
      EXPECT_FALSE(torch::equal(item.value(), before[name])) << name << " did not change";
    } else {
      ++frozen_count;
      EXPECT_FALSE(item.value().grad().defined()) << name << " got a gradient";
      EXPECT_TRUE(torch::equal(item.value(), before[name])) << name << " changed";
    }
  }
  EXPECT_GT(frozen_count, 0);
  EXPECT_GT(trained_count, 0);
}

TEST(ParameterReport, CountsPerGroupAndJson) {
  BertForSequenceClassification model(tiny_config(), HeadConfig{});
  model->bert->add_adapter("task", AdapterConfig::pfeiffer());
  prepare_task_training(*model, "task", FreezePolicy::from_name("adapters-head"));
  // The task's view: the base, its adapters and its own head (the model's head left out).
  ParameterReport report = parameter_report(*model, "task");
  // hidden 32, m = 32/16 = 2: 2*2*32 + 32 + 2 = 162 per adapter, one per layer, 2 layers.
  EXPECT_EQ(report.count(ParameterGroup::kAdapter), 324);
  EXPECT_EQ(report.count(ParameterGroup::kHead), 32 * 2 + 2);
  EXPECT_EQ(report.trainable(), 324 + 66);
  EXPECT_EQ(report.task_parameters, 324 + 66);
  int64_t all = 0;
  for (const auto& p : model->parameters()) all += p.numel();
  EXPECT_EQ(report.total(), all - 66);  // the model's own head is not the task's
  EXPECT_EQ(report.base(), all - 324 - 66 - 66);
  // The whole model: both heads.
  EXPECT_EQ(parameter_report(*model).total(), all);
  EXPECT_EQ(parameter_report(*model).count(ParameterGroup::kHead), 2 * 66);
  const std::string json = report.to_json_string();
  EXPECT_NE(json.find("\"total\":" + std::to_string(all - 66)), std::string::npos) << json;
  EXPECT_NE(json.find("\"trainable\":390"), std::string::npos) << json;
  EXPECT_NE(json.find("\"adapter\":324"), std::string::npos) << json;
  EXPECT_NE(json.find("\"base\":" + std::to_string(all - 390 - 66)), std::string::npos) << json;
  const std::string table = report.to_table();
  EXPECT_NE(table.find("adapters"), std::string::npos);
  EXPECT_NE(table.find("total"), std::string::npos);
  EXPECT_NE(table.find("adapters are 1.341% of the base model (24,160 base"), std::string::npos)
      << table;
}

TEST(ParameterReport, TableOfAModelWithoutAdaptersSaysSo) {
  BertForSequenceClassification model(tiny_config(), HeadConfig{});
  const std::string table = parameter_report(*model).to_table();
  EXPECT_EQ(table.find("adapters are"), std::string::npos) << table;
  EXPECT_NE(table.find("no adapters ("), std::string::npos) << table;
}

}  // namespace
}  // namespace adaptertune
