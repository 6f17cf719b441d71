// `adaptertune params`: builds the model a config describes, adds adapters, applies the freeze
// policy and prints the parameter report.

#include <iostream>
#include <optional>
#include <string>

#include "adaptertune/adapter_config.h"
#include "adaptertune/bert_config.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/bert_model.h"
#include "adaptertune/error.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/training/freeze_policy.h"
#include "commands.h"
#include "common.h"

namespace adaptertune::cli {
namespace {

struct ParamsOptions {
  std::string model;
  std::string model_config;
  AdapterChoice adapter;
  TrainChoice train;
  int64_t num_labels = 2;
  bool json = false;
};

int run(const ParamsOptions& options) {
  const FreezePolicy requested = requested_policy(options.train, options.model);
  std::optional<AdapterConfig> adapter = resolve_adapter(options.adapter, requested.mode);
  // What `train` refuses, in its words: an adapter the mode would freeze, or none to train.
  check_adapter_for_policy(requested, options.train,
                           adapter ? std::optional<std::string>("adapter") : std::nullopt,
                           std::nullopt);
  HeadConfig head;
  head.num_labels = options.num_labels;
  if (options.num_labels == 1) head = HeadConfig::regression();
  // With --model the base's weights are read, so that the pooler default is the one `train`
  // would use on it; a config alone describes a base with a trained pooler.
  BertForSequenceClassification model =
      !options.model.empty()
          ? load_bert_for_sequence_classification(options.model, head)
          : BertForSequenceClassification(options.model_config.empty()
                                              ? BertConfig::bert_base()
                                              : BertConfig::from_file(options.model_config),
                                          head);
  const BertConfig& config = model->bert->config();
  std::optional<std::string> task;
  if (adapter) {
    task = "adapter";
    model->bert->add_adapter(*task, *adapter);
  }
  const FreezePolicy policy = resolve_policy(requested, options.train, *model->bert);
  // What `train` would train: the task's own tensors, or the base without one.
  if (task) {
    prepare_task_training(*model, *task, policy);
  } else {
    apply_freeze_policy(*model, policy);
  }
  ParameterReport report = parameter_report(*model, task);
  if (options.json) {
    std::cout << report.to_json_string() << "\n";
  } else {
    std::cout << "model: " << config.num_hidden_layers << " layers, hidden " << config.hidden_size
              << ", " << config.num_attention_heads << " heads, ffn " << config.intermediate_size
              << "; adapter: "
              << (adapter ? "m = " + std::to_string(adapter->bottleneck_size(config.hidden_size)) +
                                ", " + std::to_string(adapter->adapters_per_layer()) + " per layer"
                          : std::string("none"))
              << "; training: " << policy.name() << (policy.train_pooler ? " + pooler" : "") << "\n"
              << report.to_table();
  }
  return 0;
}

}  // namespace

Command add_params_command(CLI::App& app) {
  auto options = std::make_shared<ParamsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "params", "Print trainable and total parameter counts of a model with adapters");
  auto* model = add_model_option(cmd, options->model,
                                 "Model directory (its config.json, and its weights for the "
                                 "--train-pooler default)");
  cmd->add_option("--model-config", options->model_config,
                  "A config.json alone (default: bert-base-uncased's shape)")
      ->check(CLI::ExistingFile)
      ->excludes(model);
  add_adapter_options(cmd, options->adapter);
  add_train_options(cmd, options->train);
  cmd->add_option("--num-labels", options->num_labels, "Outputs of the task head (1 = regression)")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_flag("--json", options->json, "Print one JSON object instead of a table");
  return [options] { return run(*options); };
}

}  // namespace adaptertune::cli
