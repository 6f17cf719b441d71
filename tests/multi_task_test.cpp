// One base, many tasks: tasks own what they train, never write the base or each other, and
// one forward pass serves a batch that mixes them.

#include <unistd.h>

#include <map>

#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/tasks/glue.h"
#include "adaptertune/text/wordpiece.h"
#include "adaptertune/training/trainer.h"
#include "test_util.h"

namespace adaptertune {
namespace {

using testing::max_abs_diff;

const std::string kData = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";

class MultiTaskTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(MultiTaskTest);

// Moves every tensor of task `task` well away from its initial value, as training would.
void perturb_task(BertForSequenceClassification& model, const std::string& task) {
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    if (parameter_task(item.key()) == task) {
      item.value().add_(torch::randn_like(item.value()) * 0.3);
    }
  }
}

std::map<std::string, torch::Tensor> base_snapshot(BertForSequenceClassification& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : model->named_parameters()) {
    if (!parameter_task(item.key())) out[item.key()] = item.value().detach().clone();
  }
  return out;
}

// Three tasks (2 labels, 3 labels, regression) and examples with no task, in one batch.
TEST_P(MultiTaskTest, MixedBatchGivesEachExampleWhatItsTaskGivesItAlone) {
  torch::manual_seed(21);
  BertForSequenceClassification model(testing::tiny_config(),
                                      HeadConfig::classification({"no", "yes"}));
  model->add_task("two", AdapterConfig::houlsby(), HeadConfig::classification({"neg", "pos"}));
  model->add_task("three", AdapterConfig::pfeiffer(),
                  HeadConfig::classification({"entailment", "neutral", "contradiction"}));
  model->add_task("score", AdapterConfig::houlsby(), HeadConfig::regression());
  model->bert->add_layer_norm_copies("two");
  model->bert->add_layer_norm_copies("score");
  model->bert->add_pooler_copy("three");
  model->bert->add_pooler_copy("score");
  for (const char* task : {"two", "three", "score"}) perturb_task(model, task);
  model->bert->set_active_adapter("two");
  model->to(device());
  model->eval();
  torch::NoGradGuard no_grad;

  const std::vector<std::optional<std::string>> tasks = {
      "two", std::nullopt, "three", "score", "two", std::nullopt, "score", "three", "two"};
  const std::vector<int64_t> lengths = {9, 4, 7, 9, 2, 6, 5, 9, 3};
  const int64_t batch = static_cast<int64_t>(tasks.size());
  auto ids = torch::randint(1, 120, {batch, 9}, torch::kLong);
  auto mask = torch::zeros({batch, 9}, torch::kLong);
  for (int64_t i = 0; i < batch; ++i) mask[i].slice(0, 0, lengths[size_t(i)]).fill_(1);
  ids = ids * mask;  // padding id 0
  auto types = (torch::arange(9).unsqueeze(0) >= 3).to(torch::kLong).expand({batch, 9}) * mask;
  const TaskRouting routing = TaskRouting::per_example(tasks, device());
  ASSERT_EQ(routing.groups().size(), 4u);
  const std::vector<torch::Tensor> mixed =
      model->forward_routed(ids.to(device()), mask.to(device()), types.to(device()), routing);
  EXPECT_EQ(model->bert->active_adapter(), "two");  // a routed pass changes no state

  for (size_t g = 0; g < routing.groups().size(); ++g) {
    const auto& group = routing.groups()[g];
    ASSERT_EQ(mixed[g].size(0), static_cast<int64_t>(group.row_list.size()));
    EXPECT_EQ(mixed[g].size(1), model->head_config(group.task).num_labels);
    for (size_t k = 0; k < group.row_list.size(); ++k) {
      const int64_t i = group.row_list[k];
      const int64_t n = lengths[size_t(i)];
      model->bert->set_active_adapter(group.task);
      // The example alone, without padding.
      torch::Tensor alone =
          model->forward(ids[i].slice(0, 0, n).unsqueeze(0).to(device()), torch::Tensor(),
                         types[i].slice(0, 0, n).unsqueeze(0).to(device()));
      EXPECT_LT(max_abs_diff(mixed[g][int64_t(k)], alone[0]), 1e-5)
          << "example " << i << " task " << group.task.value_or("(none)");
    }
  }
  // The tasks really differ from the base: the routing is what makes the outputs agree.
  model->bert->set_active_adapter(std::nullopt);
  torch::Tensor plain = model(ids[0].unsqueeze(0).to(device()), mask[0].unsqueeze(0).to(device()),
                              types[0].unsqueeze(0).to(device()));
  EXPECT_GT(max_abs_diff(plain[0], mixed[0][0]), 1e-3);
}

TEST(MultiTask, RoutingErrorsNameTheProblem) {
  BertForSequenceClassification model(testing::tiny_config(), HeadConfig{});
  model->add_task("a", AdapterConfig::houlsby(), HeadConfig{});
  auto ids = torch::randint(1, 120, {3, 5}, torch::kLong);
  EXPECT_ERROR_CONTAINS(
      model->forward_routed(ids, {}, {}, TaskRouting::per_example({"a", "b", std::nullopt})),
      "no adapter named \"b\" (the model's tasks are \"a\")");
  EXPECT_ERROR_CONTAINS(model->forward_routed(ids, {}, {}, TaskRouting::per_example({"a", "a"})),
                        "routing is for 2 examples, input_ids has 3");
  EXPECT_ERROR_CONTAINS(model->add_task("a", AdapterConfig::houlsby(), HeadConfig{}),
                        "adapter \"a\" already exists");
  EXPECT_ERROR_CONTAINS(model->add_task_head("a", HeadConfig{}), "already has a head");
}

TEST(MultiTask, ActivatingATaskSelectsItsLayerNormsPoolerAndHead) {
  torch::manual_seed(4);
  BertForSequenceClassification model(testing::tiny_config(), HeadConfig{});
  model->add_task("a", AdapterConfig::houlsby(), HeadConfig::classification({"x", "y", "z"}));
  model->bert->add_layer_norm_copies("a");
  model->bert->add_pooler_copy("a");
  model->eval();
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(1, 120, {2, 6}, torch::kLong);
  model->bert->set_active_adapter("a");
  auto before = model(ids);
  EXPECT_EQ(before.size(1), 3);
  // Changing the base's LayerNorms, pooler and head leaves task a alone...
  model->bert->embeddings->LayerNorm->weight.mul_(2);
  model->bert->encoder->at(0)->output->LayerNorm->bias.add_(1);
  model->bert->pooler->dense->weight.mul_(-1);
  model->classifier->weight.mul_(3);
  EXPECT_TRUE(torch::equal(model(ids), before));
  // ...and changing a's copies changes a.
  auto params = model->named_parameters();
  params["bert.embeddings.tasks.a.LayerNorm.weight"].mul_(2);
  EXPECT_FALSE(torch::equal(model(ids), before));
  model->remove_task("a");
  for (const auto& item : model->named_parameters()) {
    EXPECT_FALSE(parameter_task(item.key()).has_value()) << item.key();
  }
}

struct GlueFixture {
  WordPieceTokenizer tokenizer{kData + "/vocab/bert-base-uncased-vocab.txt"};
  EncodedDataset train(const std::string& task) const { return encode(task, "train", 64); }
  EncodedDataset dev(const std::string& task) const { return encode(task, "dev", 32); }
  EncodedDataset encode(const std::string& task, const std::string& split, size_t n) const {
    TextDataset data = read_glue(glue_task(task), kData + "/glue", split);
    data.examples.resize(n);
    return encode_examples(data, tokenizer, 32);
  }
};

std::string run_dir(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "adaptertune_multitask_" + name + "_" + std::to_string(::getpid());
  remove_tree(dir);
  return dir;
}

BertForSequenceClassification base_model() {
  torch::manual_seed(8);
  BertConfig config = testing::tiny_config();
  config.vocab_size = 30522;
  return BertForSequenceClassification(config, HeadConfig::classification({"0", "1"}));
}

// Bytes of the tensors in a pack's files.
int64_t pack_tensor_bytes(const std::string& pack) {
  int64_t bytes = 0;
  for (const char* file : {"/adapter.safetensors", "/model_head.safetensors"}) {
    for (const auto& [name, tensor] : load_safetensors(pack + file)) {
      bytes += tensor.numel() * static_cast<int64_t>(tensor.element_size());
    }
  }
  return bytes;
}

int64_t model_bytes(BertForSequenceClassification& model) {
  int64_t bytes = 0;
  for (const auto& p : model->parameters()) bytes += p.numel() * int64_t(p.element_size());
  return bytes;
}

// Task A, then B, then C on one model: A's dev logits afterwards are bit-identical to those
// right after A trained, and the base never changes (its identity hash, every tensor).
TEST(MultiTask, TrainingTasksInTurnForgetsNothingAndNeverWritesTheBase) {
  GlueFixture f;
  auto model = base_model();
  const std::string identity = base_weights_sha256(*model, false, false);
  const auto base_before = base_snapshot(model);
  struct Step {
    std::string task, name;
    AdapterConfig adapter;
    FreezePolicy policy;
  };
  FreezePolicy with_pooler;
  with_pooler.train_pooler = true;
  const std::vector<Step> steps = {
      {"SST-2", "sst2", AdapterConfig::houlsby(), FreezePolicy{}},
      {"STS-B", "stsb", AdapterConfig::houlsby(), with_pooler},
      {"CoLA", "cola", AdapterConfig::pfeiffer(), FreezePolicy::from_name("adapters-head")}};
  std::map<std::string, std::vector<std::vector<float>>> logits_after_training;
  std::map<std::string, std::string> packs;
  for (const Step& step : steps) {
    const GlueTaskInfo& task = glue_task(step.task);
    model->bert->add_adapter(step.name, step.adapter);
    TrainerOptions options;
    options.epochs = 1;
    options.batch_size = 16;
    options.lr = 5e-3;
    options.progress = false;
    options.output_dir = run_dir(step.name);
    HeadConfig head =
        task.regression() ? HeadConfig::regression() : HeadConfig::classification(task.labels);
    model->add_task_head(step.name, head);
    Trainer(model, task, f.train(step.task), f.dev(step.task), step.policy, step.name, options,
            f.tokenizer)
        .train();
    logits_after_training[step.name] = evaluate(model, task, f.dev(step.task), 16, torch::kCPU,
                                                Precision::kFloat32, f.tokenizer.pad_id())
                                           .logits;
    packs[step.name] = options.output_dir + "/best";
    EXPECT_EQ(base_weights_sha256(*model, false, false), identity) << "after " << step.name;
  }
  for (const Step& step : steps) {
    model->bert->set_active_adapter(step.name);
    const auto again = evaluate(model, glue_task(step.task), f.dev(step.task), 16, torch::kCPU,
                                Precision::kFloat32, f.tokenizer.pad_id())
                           .logits;
    EXPECT_EQ(again, logits_after_training[step.name]) << step.name << " was disturbed";
  }
  for (const auto& [name, value] : base_snapshot(model)) {
    EXPECT_TRUE(torch::equal(value, base_before.at(name))) << name << " was written";
  }
  EXPECT_EQ(model->head_config("stsb").problem_type, ProblemType::kRegression);
  EXPECT_TRUE(model->bert->tasks().at("sst2").layer_norms);
  EXPECT_FALSE(model->bert->tasks().at("cola").layer_norms);
  EXPECT_TRUE(model->bert->tasks().at("stsb").pooler);

  // Ten packs (the three, under several names) onto one fresh base: the base is unchanged and
  // the model grows by exactly the packs' own tensors.
  auto served = base_model();
  const int64_t bytes_before = model_bytes(served);
  int64_t pack_bytes = 0;
  const std::vector<std::string> order = {"sst2", "stsb", "cola"};
  for (int i = 0; i < 10; ++i) {
    const std::string& source = order[size_t(i) % order.size()];
    load_adapter_pack(served, packs[source], source + "_" + std::to_string(i));
    pack_bytes += pack_tensor_bytes(packs[source]);
  }
  EXPECT_EQ(base_weights_sha256(*served, false, false), identity);
  EXPECT_EQ(model_bytes(served) - bytes_before, pack_bytes);
  EXPECT_EQ(served->bert->adapter_names().size(), 10u);
  // Each loaded task answers as it did in training (one epoch: the best model is the last).
  for (int i = 0; i < 3; ++i) {
    const Step& step = steps[size_t(i)];
    served->bert->set_active_adapter(step.name + "_" + std::to_string(i));
    const auto loaded = evaluate(served, glue_task(step.task), f.dev(step.task), 16, torch::kCPU,
                                 Precision::kFloat32, f.tokenizer.pad_id())
                            .logits;
    EXPECT_EQ(loaded, logits_after_training[step.name]) << step.name;
  }
}

}  // namespace
}  // namespace adaptertune
