// `adaptertune params`: builds the model a config describes, adds adapters, applies the freeze
// policy and prints the parameter report.

#include <iostream>
#include <optional>
#include <string>

#include "adaptertune/adapter_config.h"
#include "adaptertune/bert_config.h"
#include "adaptertune/bert_model.h"
#include "adaptertune/error.h"
#include "adaptertune/layers/heads.h"
#include "adaptertune/training/freeze_policy.h"
#include "commands.h"

namespace adaptertune::cli {
namespace {

struct ParamsOptions {
  std::string model_config;
  std::string adapter = "houlsby";
  std::string adapter_config_file;
  std::optional<double> reduction_factor;
  std::optional<int64_t> adapter_size;
  std::string train = "adapters";
  bool train_pooler = false;
  int64_t num_labels = 2;
  bool json = false;
};

int run(const ParamsOptions& options) {
  BertConfig config = options.model_config.empty() ? BertConfig::bert_base()
                                                   : BertConfig::from_file(options.model_config);
  std::optional<AdapterConfig> adapter;
  if (!options.adapter_config_file.empty()) {
    adapter = AdapterConfig::from_file(options.adapter_config_file);
  } else if (options.adapter != "none") {
    adapter = AdapterConfig::preset(options.adapter);
  }
  if (adapter) {
    if (options.reduction_factor) adapter->reduction_factor = *options.reduction_factor;
    if (options.adapter_size) adapter->adapter_size = *options.adapter_size;
  } else if (options.reduction_factor || options.adapter_size) {
    throw Error("--reduction-factor and --adapter-size need an adapter (--adapter is none)");
  }
  FreezePolicy policy = FreezePolicy::from_name(options.train);
  policy.train_pooler = options.train_pooler;

  HeadConfig head;
  head.num_labels = options.num_labels;
  if (options.num_labels == 1) head = HeadConfig::regression();
  BertForSequenceClassification model(config, head);
  if (adapter) model->bert->add_adapter("adapter", *adapter);
  apply_freeze_policy(*model, policy);
  ParameterReport report = parameter_report(*model);
  if (options.json) {
    std::cout << report.to_json_string() << "\n";
  } else {
    std::cout << "model: " << config.num_hidden_layers << " layers, hidden " << config.hidden_size
              << ", " << config.num_attention_heads << " heads, ffn " << config.intermediate_size
              << "; adapter: "
              << (adapter ? options.adapter + " (m = " +
                                std::to_string(adapter->bottleneck_size(config.hidden_size)) + ")"
                          : std::string("none"))
              << "; training: " << policy.name() << "\n"
              << report.to_table();
  }
  return 0;
}

}  // namespace

Command add_params_command(CLI::App& app) {
  auto options = std::make_shared<ParamsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "params", "Print trainable and total parameter counts of a model with adapters");
  cmd->add_option("--model-config", options->model_config,
                  "Hugging Face config.json of the base model (default: bert-base-uncased)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--adapter", options->adapter, "Adapter preset: houlsby, pfeiffer or none")
      ->check(CLI::IsMember({"houlsby", "pfeiffer", "none"}))
      ->capture_default_str();
  cmd->add_option("--adapter-config", options->adapter_config_file,
                  "AdapterHub-style adapter_config.json (instead of --adapter)")
      ->check(CLI::ExistingFile);
  auto* rf =
      cmd->add_option("--reduction-factor", options->reduction_factor, "Bottleneck m = hidden / N")
          ->check(CLI::PositiveNumber);
  cmd->add_option("--adapter-size", options->adapter_size, "Bottleneck size m")
      ->check(CLI::PositiveNumber)
      ->excludes(rf);
  cmd->add_option("--train", options->train,
                  "What trains: adapters (adapters + LayerNorms + head), adapters-head, full, head")
      ->check(CLI::IsMember({"adapters", "adapters-head", "full", "head"}))
      ->capture_default_str();
  cmd->add_flag("--train-pooler", options->train_pooler, "Also train the pooler");
  cmd->add_option("--num-labels", options->num_labels, "Outputs of the task head (1 = regression)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--json", options->json, "Print one JSON object instead of a table");
  return [options] { return run(*options); };
}

}  // namespace adaptertune::cli
