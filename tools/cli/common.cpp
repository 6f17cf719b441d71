#include "common.h"

#include <algorithm>

#include "adaptertune/error.h"

namespace adaptertune::cli {

std::string adapter_name_for(const GlueTaskInfo& task) {
  std::string name = task.name;
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

CLI::Option* add_model_option(CLI::App* cmd, std::string& model, const std::string& help) {
  return cmd->add_option("--model", model, help)->check(CLI::ExistingDirectory);
}

CLI::Option* add_device_option(CLI::App* cmd, std::string& device) {
  return cmd
      ->add_option("--device", device,
                   "cpu, cuda, cuda:N, or auto (the first GPU when there is one, else the CPU)")
      ->capture_default_str();
}

CLI::Option* add_precision_option(CLI::App* cmd, std::optional<std::string>& precision,
                                  const std::string& help) {
  return cmd->add_option("--precision", precision, help)
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
}

void add_adapter_options(CLI::App* cmd, AdapterChoice& choice) {
  auto* preset = cmd->add_option("--adapter", choice.preset,
                                 "houlsby, pfeiffer or none (default: houlsby when --train "
                                 "trains adapters, else none)")
                     ->check(CLI::IsMember({"houlsby", "pfeiffer", "none"}));
  cmd->add_option("--adapter-config", choice.config_file,
                  "AdapterHub-style adapter_config.json (instead of --adapter)")
      ->check(CLI::ExistingFile)
      ->excludes(preset);
  auto* rf = cmd->add_option("--reduction-factor", choice.reduction_factor,
                             "Bottleneck m = hidden_size // N")
                 ->check(CLI::PositiveNumber);
  cmd->add_option("--adapter-size", choice.adapter_size, "Bottleneck size m")
      ->check(CLI::PositiveNumber)
      ->excludes(rf);
}

std::optional<AdapterConfig> resolve_adapter(const AdapterChoice& choice, TrainMode mode) {
  std::optional<AdapterConfig> adapter;
  if (!choice.config_file.empty()) {
    adapter = AdapterConfig::from_file(choice.config_file);
  } else {
    const bool trains_adapters =
        mode == TrainMode::kAdapters || mode == TrainMode::kAdaptersAndHead;
    const std::string preset = choice.preset.value_or(trains_adapters ? "houlsby" : "none");
    if (preset != "none") adapter = AdapterConfig::preset(preset);
  }
  if (adapter) {
    if (choice.reduction_factor) adapter->reduction_factor = *choice.reduction_factor;
    if (choice.adapter_size) adapter->adapter_size = *choice.adapter_size;
    adapter->validate();
  } else if (choice.reduction_factor || choice.adapter_size) {
    throw Error("--reduction-factor and --adapter-size need an adapter (--adapter is none)");
  }
  return adapter;
}

void add_train_options(CLI::App* cmd, TrainChoice& choice) {
  cmd->add_option("--train", choice.mode,
                  "What trains: adapters (adapters + LayerNorms + head), adapters-head, full, head")
      ->check(CLI::IsMember({"adapters", "adapters-head", "full", "head"}))
      ->capture_default_str();
  cmd->add_flag_function(
      "--train-pooler,!--no-train-pooler", [&choice](int64_t n) { choice.train_pooler = n > 0; },
      "Train the pooler too (default: when the base's checkpoint has no pooler)");
}

FreezePolicy resolve_policy(const TrainChoice& choice, const BertModelImpl& base) {
  FreezePolicy policy = FreezePolicy::from_name(choice.mode);
  policy.train_pooler = choice.train_pooler.value_or(default_train_pooler(base));
  return policy;
}

}  // namespace adaptertune::cli
