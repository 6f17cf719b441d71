#include "adaptertune/io/adapter_pack.h"

#include <algorithm>
#include <map>

#include <ATen/ATen.h>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/version.h"
#include "json_util.h"
#include "sha256.h"
#include "shape_check.h"

namespace adaptertune {
namespace {

const char* kConfigFile = "adapter_config.json";
const char* kWeightsFile = "adapter.safetensors";
const char* kHeadConfigFile = "head_config.json";
const char* kHeadWeightsFile = "model_head.safetensors";

std::string adapter_marker(const std::string& name) {
  return ".adapters." + name + ".";
}

bool is_layer_norm(const std::string& name) {
  return name.find("LayerNorm.") != std::string::npos;
}

bool is_head(const std::string& name) {
  return name.rfind("classifier.", 0) == 0;
}

bool is_pooler(const std::string& name) {
  return name.find("pooler.") != std::string::npos;
}

// Which parameters of `model` belong in a pack of adapter `name`: the adapter, and the base
// parameters that were trained with it (LayerNorms, pooler).
bool in_pack(const std::string& param, const std::string& name, bool layer_norms, bool pooler) {
  return param.find(adapter_marker(name)) != std::string::npos ||
         (layer_norms && is_layer_norm(param)) || (pooler && is_pooler(param));
}

std::string rename_adapter(const std::string& tensor, const std::string& from,
                           const std::string& to) {
  const std::string marker = adapter_marker(from);
  auto at = tensor.find(marker);
  if (at == std::string::npos) return tensor;
  return tensor.substr(0, at) + adapter_marker(to) + tensor.substr(at + marker.size());
}

// Checks that every tensor has a parameter of the same name and shape in `params`.
void check_fits(torch::OrderedDict<std::string, torch::Tensor>& params, const NamedTensors& tensors,
                const std::string& source) {
  for (const auto& [name, tensor] : tensors) {
    if (!params.contains(name)) {
      throw Error(source + ": tensor \"" + name + "\" has no place in this model");
    }
    const auto& param = params[name];
    if (!tensor.sizes().equals(param.sizes())) {
      throw Error(source + ": tensor \"" + name + "\" has shape " + detail::shape_string(tensor) +
                  ", the model needs " + detail::shape_string(param));
    }
  }
}

void copy_into(torch::OrderedDict<std::string, torch::Tensor>& params,
               const NamedTensors& tensors) {
  torch::NoGradGuard no_grad;
  for (const auto& [name, tensor] : tensors) {
    auto& param = params[name];
    param.copy_(tensor.to(param.device(), param.scalar_type()));
  }
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
    const std::string& name = item.key();
    if (name.find(".adapters.") != std::string::npos || is_head(name) ||
        (layer_norms && is_layer_norm(name)) || (pooler && is_pooler(name))) {
      continue;
    }
    // Hash under the BertModel name, so that a bare BertModel and a classifier agree.
    base.emplace_back(name.rfind("bert.", 0) == 0 ? name.substr(5) : name, item.value());
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
    sub.ignore({"train_mode", "library_version"});
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
  const bool layer_norms = options.policy.trains(ParameterGroup::kLayerNorm);
  const bool pooler = options.policy.trains(ParameterGroup::kPooler);
  NamedTensors weights, head;
  for (const auto& item : model->named_parameters()) {
    at::Tensor value = item.value().detach().to(at::kCPU, at::kFloat);
    if (in_pack(item.key(), adapter_name, layer_norms, pooler))
      weights.emplace_back(item.key(), value);
    if (is_head(item.key())) head.emplace_back(item.key(), value);
  }
  const BertConfig& base = model->bert->config();
  detail::Json document = {
      {"name", adapter_name},
      {"config", detail::parse_json(config.to_json_string(), "adapter config")},
      {"hidden_size", base.hidden_size},
      {"model_type", "bert"},
      {"model_class", "BertForSequenceClassification"},
      {"model_name", options.base_model_name},
      {"version", std::string("adaptertune-") + version()},
      {"adaptertune",
       {{"base_config_sha256", base_config_sha256(base)},
        {"base_weights_sha256", base_weights_sha256(*model, layer_norms, pooler)},
        {"train_mode", options.policy.name()},
        {"layer_norms", layer_norms},
        {"pooler", pooler},
        {"library_version", version()}}},
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
    weights.emplace_back(rename_adapter(name, info.name, result.adapter_name), tensor);
  }
  NamedTensors head;
  if (with_head) head = load_safetensors(directory + "/" + kHeadWeightsFile);

  // Identity of the base, before the pack's LayerNorms overwrite the model's.
  const std::string config_hash = base_config_sha256(base);
  const std::string weights_hash = base_weights_sha256(*model, info.layer_norms, info.pooler);

  model->bert->add_adapter(result.adapter_name, info.config);
  try {
    auto params = model->named_parameters();
    std::vector<std::string> missing;
    for (const auto& item : params) {
      if (!in_pack(item.key(), result.adapter_name, info.layer_norms, info.pooler)) continue;
      bool found = std::any_of(weights.begin(), weights.end(),
                               [&](const auto& w) { return w.first == item.key(); });
      if (!found) missing.push_back(item.key());
    }
    if (!missing.empty()) {
      throw Error(weights_path + ": lacks " + std::to_string(missing.size()) +
                  " of the pack's tensors, e.g. \"" + missing.front() + "\"");
    }
    for (const auto& [name, tensor] : weights) {
      if (name.find(".adapters.") == std::string::npos && !is_layer_norm(name) &&
          !is_pooler(name)) {
        throw Error(weights_path + ": tensor \"" + name +
                    "\" is neither an adapter, a LayerNorm nor a pooler tensor");
      }
    }
    check_fits(params, weights, weights_path);
    check_fits(params, head, directory + "/" + kHeadWeightsFile);
    copy_into(params, weights);
    copy_into(params, head);
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
