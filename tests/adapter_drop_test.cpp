// AdapterDrop (Rücklé et al., 2021): an adapter's `leave_out` layers carry nothing of the task and
// run exactly as the frozen base. Tests are named LeaveOut so that `ctest -R LeaveOut` runs them.

#include <unistd.h>

#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/training/freeze_policy.h"
#include "test_util.h"

namespace adaptertune {
namespace {

BertForSequenceClassification tiny_model() {
  torch::manual_seed(11);
  BertForSequenceClassification model(testing::tiny_config_without_dropout(), HeadConfig{});
  model->eval();
  return model;
}

// Gives every trainable tensor of `task` random values, so that nothing of the task is identity.
void randomize_task(BertForSequenceClassification& model, const std::string& task) {
  torch::NoGradGuard no_grad;
  for (const auto& item : model->named_parameters()) {
    if (parameter_task(item.key()) == task) item.value().normal_(0, 0.2);
  }
}

std::vector<std::string> task_tensor_names(BertForSequenceClassification& model,
                                           const std::string& task) {
  std::vector<std::string> out;
  for (const auto& item : model->named_parameters()) {
    if (parameter_task(item.key()) == task) out.push_back(item.key());
  }
  return out;
}

TEST(LeaveOut, ConfigRoundTripsAndIsChecked) {
  AdapterConfig config = AdapterConfig::houlsby();
  config.leave_out = {0, 1, 5};
  EXPECT_EQ(AdapterConfig::from_json_string(config.to_json_string()), config);
  // AdapterHub writes the layers in any order: the set is what counts.
  EXPECT_EQ(AdapterConfig::from_json_string(R"({"leave_out": [5, 0, 1]})").leave_out,
            (std::vector<int64_t>{0, 1, 5}));
  EXPECT_TRUE(config.in_layer(2));
  EXPECT_FALSE(config.in_layer(5));
  config.leave_out = {1, 1};
  EXPECT_ERROR_CONTAINS(config.validate(), "'leave_out' must list layer indices");
  config.leave_out = {-1};
  EXPECT_ERROR_CONTAINS(config.validate(), "'leave_out' must list layer indices");
  config.leave_out = {3};
  auto model = tiny_model();
  EXPECT_ERROR_CONTAINS(model->bert->add_adapter("t", config),
                        "leave_out names layer 3 but the model has 3 layers (0 to 2)");
  EXPECT_EQ(model->bert->tasks().size(), 0u);
}

TEST(LeaveOut, LeftOutLayersHoldNothingOfTheTask) {
  auto model = tiny_model();
  AdapterConfig config = AdapterConfig::houlsby();
  config.leave_out = {0, 1};
  model->bert->add_adapter("t", config);
  prepare_task_training(*model, "t", FreezePolicy::from_name("adapters"));
  for (const auto& name : task_tensor_names(model, "t")) {
    EXPECT_EQ(name.find("encoder.layer.0."), std::string::npos) << name;
    EXPECT_EQ(name.find("encoder.layer.1."), std::string::npos) << name;
    EXPECT_EQ(name.find("embeddings."), std::string::npos) << name;
  }
  // Layer 2 keeps both adapters and its two LayerNorm copies.
  const int64_t d = 32, m = 2;
  const int64_t expected = 2 * (2 * m * d + d + m) + 2 * 2 * d;
  int64_t in_layer_2 = 0;
  for (const auto& item : model->named_parameters()) {
    if (parameter_task(item.key()) == "t" &&
        item.key().find("encoder.layer.2.") != std::string::npos)
      in_layer_2 += item.value().numel();
  }
  EXPECT_EQ(in_layer_2, expected);
}

// The exact expectation: a task leaving out layers 0 and 1 gives what a task with adapters
// everywhere gives when its layer-0 and layer-1 adapters are exactly the identity and its
// LayerNorm copies there equal the base's.
TEST(LeaveOut, EqualsAnAdapterThatIsTheIdentityInThoseLayers) {
  auto model = tiny_model();
  AdapterConfig dropped = AdapterConfig::houlsby();
  dropped.leave_out = {0, 1};
  model->bert->add_adapter("drop", dropped);
  model->bert->add_layer_norm_copies("drop");
  model->add_task_head("drop", HeadConfig{});
  randomize_task(model, "drop");
  model->bert->add_adapter("full", AdapterConfig::houlsby());
  model->bert->add_layer_norm_copies("full");
  model->add_task_head("full", HeadConfig{});
  {
    torch::NoGradGuard no_grad;
    auto params = model->named_parameters();
    for (const auto& item : model->named_parameters()) {
      if (parameter_task(item.key()) != "full") continue;
      const std::string twin = rename_task_parameter(item.key(), "full", "drop");
      if (params.contains(twin)) {
        item.value().copy_(params[twin]);
      } else if (item.key().find(".adapters.full.") != std::string::npos) {
        item.value().zero_();  // a zero up-projection: this adapter is the identity
      } else {
        item.value().copy_(params[shared_parameter_name(item.key())]);  // the base's LayerNorm
      }
    }
  }
  const auto ids = torch::randint(1, 120, {3, 9}, torch::kLong);
  torch::NoGradGuard no_grad;
  model->bert->set_active_adapter("drop");
  const auto with_drop = model(ids);
  model->bert->set_active_adapter("full");
  const auto with_identity = model(ids);
  EXPECT_LT(testing::max_abs_diff(with_drop, with_identity), 1e-6);
  model->bert->set_active_adapter(std::nullopt);
  EXPECT_GT(testing::max_abs_diff(with_drop, model(ids)), 1e-3) << "the task does something";
}

TEST(LeaveOut, PacksKeepTheLayersOutAndReload) {
  auto model = tiny_model();
  AdapterConfig config = AdapterConfig::pfeiffer();
  config.leave_out = {0};
  model->bert->add_adapter("p", config);
  prepare_task_training(*model, "p", FreezePolicy::from_name("adapters"));
  randomize_task(model, "p");
  const std::string dir =
      ::testing::TempDir() + "adaptertune_leave_out_" + std::to_string(::getpid());
  remove_tree(dir);
  save_adapter_pack(model, "p", dir);
  for (const auto& [name, tensor] : load_safetensors(dir + "/adapter.safetensors")) {
    EXPECT_EQ(name.find("layer.0."), std::string::npos) << name;
  }
  EXPECT_EQ(read_adapter_pack_info(dir).config.leave_out, std::vector<int64_t>{0});
  auto fresh = tiny_model();
  load_adapter_pack(fresh, dir);
  const auto ids = torch::randint(1, 120, {2, 7}, torch::kLong);
  torch::NoGradGuard no_grad;
  model->bert->set_active_adapter("p");
  fresh->bert->set_active_adapter("p");
  EXPECT_LT(testing::max_abs_diff(model(ids), fresh(ids)), 1e-6);
  remove_tree(dir);
}

}  // namespace
}  // namespace adaptertune
