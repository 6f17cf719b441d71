#include "adaptertune/io/adapter_pack.h"

#include <algorithm>

#include <ATen/ATen.h>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/parameter_names.h"
#include "adaptertune/version.h"
#include "json_util.h"
#include "parameter_assignment.h"
#include "sha256.h"

namespace adaptertune {
namespace {

const char* kConfigFile = "adapter_config.json";
const char* kWeightsFile = "adapter.safetensors";
const char* kHeadConfigFile = "head_config.json";
const char* kHeadWeightsFile = "model_head.safetensors";

// The base tensors a pack carries beside its adapter.
struct CarriedBase {
  bool layer_norms = false;
  bool pooler = false;
};

// Which parameters of a model belong in a pack of adapter `name`.
bool in_pack(const std::string& param, const std::string& name, CarriedBase carried) {
  if (is_adapter_parameter(param)) return is_adapter_parameter(param, name);
  const ParameterGroup group = classify_parameter(param);
  return (carried.layer_norms && group == ParameterGroup::kLayerNorm) ||
         (carried.pooler && group == ParameterGroup::kPooler);
}

// What a pack of `model` must carry to reproduce its logits on the base checkpoint: the
// LayerNorms when they train, the pooler when it trains or did not come from the checkpoint.
CarriedBase carried_base(BertForSequenceClassification& model) {
  CarriedBase carried;
  carried.pooler = !model->bert->pooler_pretrained();
  for (const auto& item : model->named_parameters()) {
    if (!item.value().requires_grad() || is_adapter_parameter(item.key())) continue;
    const ParameterGroup group = classify_parameter(item.key());
    if (group == ParameterGroup::kLayerNorm) carried.layer_norms = true;
    if (group == ParameterGroup::kPooler) carried.pooler = true;
  }
  return carried;
}

}  // namespace

std::string base_config_sha256(const BertConfig& config) {
  detail::Sha256 sha;
  sha.update(config.to_json_string());
  return sha.hex_digest();
}

std::string base_weights_sha256(torch::nn::Module& model, bool layer_norms, bool pooler) {
  std::vector<std::pair<std::string, at::Tensor>> base;
  for (const auto& item : model.named_parameters()) {
    const ParameterGroup group = classify_parameter(item.key());
    if (group == ParameterGroup::kAdapter || group == ParameterGroup::kHead ||
        (layer_norms && group == ParameterGroup::kLayerNorm) ||
        (pooler && group == ParameterGroup::kPooler)) {
      continue;
    }
    // Hash under the BertModel name, so that a bare BertModel and a classifier agree.
    base.emplace_back(base_parameter_name(item.key()), item.value());
  }
  std::sort(base.begin(), base.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  detail::Sha256 sha;
  for (const auto& [name, tensor] : base) {
    sha.update(name);
    at::Tensor data = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
    sha.update(data.data_ptr(), static_cast<size_t>(data.numel()) * sizeof(float));
  }
  return sha.hex_digest();
}

AdapterPackInfo read_adapter_pack_info(const std::string& directory) {
  const std::string path = directory + "/" + kConfigFile;
  detail::Json document = detail::parse_json(read_file(path), path);
  detail::JsonObjectReader reader(document, path);
  AdapterPackInfo info;
  reader.read("name", info.name);
  if (info.name.empty()) reader.fail("name", "the adapter's name");
  const detail::Json* config = reader.take("config");
  if (config == nullptr || !config->is_object()) reader.fail("config", "an object");
  info.config = AdapterConfig::from_json_string(config->dump(), path + " (config)");
  reader.read("hidden_size", info.hidden_size);
  reader.read("model_name", info.base_model_name);
  std::string model_type = "bert";
  reader.read("model_type", model_type);
  if (model_type != "bert") reader.fail("model_type", "\"bert\"");
  reader.ignore({"model_class", "version"});
  if (const detail::Json* ours = reader.take("adaptertune")) {
    detail::JsonObjectReader sub(*ours, path + " (adaptertune)");
    sub.read("base_config_sha256", info.base_config_sha256);
    sub.read("base_weights_sha256", info.base_weights_sha256);
    sub.read("layer_norms", info.layer_norms);
    sub.read("pooler", info.pooler);
    sub.read("train_mode", info.train_mode);
    sub.read("max_length", info.max_length);
    if (info.max_length < 0) sub.fail("max_length", "a positive number of tokens");
    if (const detail::Json* precision = sub.take("precision"); precision && !precision->is_null()) {
      if (!precision->is_string()) sub.fail("precision", "\"fp32\", \"bf16\" or \"fp16\"");
      try {
        info.precision = parse_precision(precision->get<std::string>());
      } catch (const Error&) {
        sub.fail("precision", "\"fp32\", \"bf16\" or \"fp16\"");
      }
    }
    sub.ignore({"library_version"});
    sub.finish();
  }
  reader.finish();
  const std::string head_path = directory + "/" + kHeadConfigFile;
  if (file_exists(head_path)) {
    info.head = HeadConfig::from_model_config(read_file(head_path), head_path);
  }
  return info;
}

void save_adapter_pack(BertForSequenceClassification& model, const std::string& adapter_name,
                       const std::string& directory, const AdapterPackOptions& options) {
  const AdapterConfig& config = model->bert->adapter_config(adapter_name);  // throws if absent
  const CarriedBase carried = carried_base(model);
  NamedTensors weights, head;
  for (const auto& item : model->named_parameters()) {
    at::Tensor value = item.value().detach().to(at::kCPU, at::kFloat);
    if (in_pack(item.key(), adapter_name, carried)) weights.emplace_back(item.key(), value);
    if (classify_parameter(item.key()) == ParameterGroup::kHead) {
      head.emplace_back(item.key(), value);
    }
  }
  const BertConfig& base = model->bert->config();
  detail::Json adapter_json = detail::parse_json(config.to_json_string(), "adapter config");
  if (config.adapter_size) {
    // AdapterHub reads only reduction_factor: write the one that rebuilds this bottleneck.
    adapter_json["reduction_factor"] =
        AdapterConfig::reduction_factor_for(base.hidden_size, *config.adapter_size);
  }
  detail::Json ours = {
      {"base_config_sha256", base_config_sha256(base)},
      {"base_weights_sha256", base_weights_sha256(*model, carried.layer_norms, carried.pooler)},
      {"train_mode", options.train_mode},
      {"layer_norms", carried.layer_norms},
      {"pooler", carried.pooler},
      {"library_version", version()}};
  if (options.max_length > 0) ours["max_length"] = options.max_length;
  if (options.precision) ours["precision"] = precision_name(*options.precision);
  detail::Json document = {
      {"name", adapter_name},
      {"config", adapter_json},
      {"hidden_size", base.hidden_size},
      {"model_type", "bert"},
      {"model_class", "BertForSequenceClassification"},
      {"model_name", options.base_model_name},
      {"version", std::string("adaptertune-") + version()},
      {"adaptertune", ours},
  };
  make_directories(directory);
  save_safetensors(directory + "/" + kWeightsFile, weights, {{"format", "pt"}});
  if (options.include_head) {
    detail::Json head_config = detail::parse_json(model->head_config().to_json_string(), "head");
    head_config["model_class"] = "BertForSequenceClassification";
    head_config["model_type"] = "bert";
    head_config["hidden_size"] = base.hidden_size;
    head_config["name"] = adapter_name;
    head_config["config"] = nullptr;  // AdapterHub's marker for a static (transformers) head
    save_safetensors(directory + "/" + kHeadWeightsFile, head, {{"format", "pt"}});
    write_file_atomic(directory + "/" + kHeadConfigFile, head_config.dump(2) + "\n");
  }
  // The config last: a directory with an adapter_config.json is a complete pack.
  write_file_atomic(directory + "/" + kConfigFile, document.dump(2) + "\n");
}

AdapterPackLoad load_adapter_pack(BertForSequenceClassification& model,
                                  const std::string& directory,
                                  const std::optional<std::string>& load_as, bool load_head) {
  AdapterPackLoad result;
  result.info = read_adapter_pack_info(directory);
  const AdapterPackInfo& info = result.info;
  result.adapter_name = load_as.value_or(info.name);
  const BertConfig& base = model->bert->config();
  if (info.hidden_size != 0 && info.hidden_size != base.hidden_size) {
    throw Error(directory + ": the adapter was trained for hidden size " +
                std::to_string(info.hidden_size) + ", this model has " +
                std::to_string(base.hidden_size));
  }
  const bool with_head = load_head && info.head.has_value();
  if (with_head && info.head->num_labels != model->head_config().num_labels) {
    throw Error(directory + ": the pack's head has " + std::to_string(info.head->num_labels) +
                " labels, the model's " + std::to_string(model->head_config().num_labels) +
                " (build the model with read_adapter_pack_info().head)");
  }
  // Read and rename everything before touching the model.
  const std::string weights_path = directory + "/" + kWeightsFile;
  NamedTensors weights;
  for (auto& [name, tensor] : load_safetensors(weights_path)) {
    weights.emplace_back(rename_adapter_parameter(name, info.name, result.adapter_name), tensor);
  }
  NamedTensors head;
  if (with_head) head = load_safetensors(directory + "/" + kHeadWeightsFile);

  // Identity of the base, before the pack's LayerNorms overwrite the model's.
  const std::string config_hash = base_config_sha256(base);
  const std::string weights_hash = base_weights_sha256(*model, info.layer_norms, info.pooler);

  model->bert->add_adapter(result.adapter_name, info.config);
  try {
    const CarriedBase carried{info.layer_norms, info.pooler};
    auto params = model->named_parameters();
    detail::ParameterAssignment assignment(weights_path);
    for (const auto& [name, tensor] : weights) {
      if (!params.contains(name)) {
        throw Error(weights_path + ": tensor \"" + name + "\" has no place in this model");
      }
      if (!in_pack(name, result.adapter_name, carried)) {
        throw Error(weights_path + ": tensor \"" + name +
                    "\" is neither this adapter's, a LayerNorm nor the pooler that "
                    "adapter_config.json says the pack carries");
      }
      assignment.add(name, params[name], name, tensor);
    }
    std::vector<std::string> missing;
    for (const auto& item : params) {
      if (in_pack(item.key(), result.adapter_name, carried) && !assignment.contains(item.key())) {
        missing.push_back(item.key());
      }
    }
    if (!missing.empty()) {
      throw Error(weights_path + ": lacks " + std::to_string(missing.size()) +
                  " of the pack's tensors, e.g. \"" + missing.front() + "\"");
    }
    const std::string head_path = directory + "/" + kHeadWeightsFile;
    detail::ParameterAssignment head_assignment(head_path);
    for (const auto& [name, tensor] : head) {
      if (!params.contains(name) || classify_parameter(name) != ParameterGroup::kHead) {
        throw Error(head_path + ": tensor \"" + name +
                    "\" is not a parameter of this model's head");
      }
      head_assignment.add(name, params[name], name, tensor);
    }
    assignment.copy_all();
    head_assignment.copy_all();
  } catch (...) {
    model->bert->remove_adapter(result.adapter_name);
    throw;
  }
  model->bert->set_active_adapter(result.adapter_name);
  result.head_loaded = with_head;
  if (!info.base_config_sha256.empty() && info.base_config_sha256 != config_hash) {
    result.warnings.push_back("adapter pack " + directory +
                              " was trained on a base with another config: pack records "
                              "base_config_sha256 " +
                              info.base_config_sha256 + ", this model has " + config_hash);
  }
  if (!info.base_weights_sha256.empty() && info.base_weights_sha256 != weights_hash) {
    result.warnings.push_back("adapter pack " + directory +
                              " was trained on other base weights: pack records "
                              "base_weights_sha256 " +
                              info.base_weights_sha256 + ", this model has " + weights_hash);
  }
  return result;
}

}  // namespace adaptertune
