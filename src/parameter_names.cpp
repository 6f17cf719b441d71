#include "adaptertune/parameter_names.h"

#include "adaptertune/error.h"

namespace adaptertune {
namespace {

bool starts_with(const std::string& name, const std::string& prefix) {
  return name.rfind(prefix, 0) == 0;
}

bool contains(const std::string& name, const std::string& part) {
  return name.find(part) != std::string::npos;
}

// Where the part `<container>.<name>.` of a parameter name starts (at the start or after a '.'),
// or npos.
size_t container_part(const std::string& name, const std::string& container,
                      const std::string& key) {
  const std::string marker = container + "." + key + ".";
  if (starts_with(name, marker)) return 0;
  const size_t at = name.find("." + marker);
  return at == std::string::npos ? at : at + 1;
}

// The key under `<container>.` in a parameter name (the first such part), or nullopt.
std::optional<std::string> container_key(const std::string& name, const std::string& container) {
  const std::string marker = container + ".";
  size_t at = starts_with(name, marker) ? 0 : name.find("." + marker);
  if (at == std::string::npos) return std::nullopt;
  if (at > 0) ++at;
  const size_t begin = at + marker.size();
  const size_t end = name.find('.', begin);
  if (end == std::string::npos) return std::nullopt;
  return name.substr(begin, end - begin);
}

const char* kAdapters = "adapters";
const char* kFusions = "adapter_fusion_layer";
const char* kTasks = "tasks";

}  // namespace

const std::vector<ParameterGroup>& all_parameter_groups() {
  static const std::vector<ParameterGroup> groups = {
      ParameterGroup::kEmbeddings, ParameterGroup::kAttention, ParameterGroup::kFeedForward,
      ParameterGroup::kLayerNorm,  ParameterGroup::kAdapter,   ParameterGroup::kPooler,
      ParameterGroup::kHead};
  return groups;
}

std::string parameter_group_name(ParameterGroup group) {
  switch (group) {
    case ParameterGroup::kEmbeddings:
      return "embeddings";
    case ParameterGroup::kAttention:
      return "attention";
    case ParameterGroup::kFeedForward:
      return "ffn";
    case ParameterGroup::kLayerNorm:
      return "layer_norm";
    case ParameterGroup::kAdapter:
      return "adapters";
    case ParameterGroup::kPooler:
      return "pooler";
    case ParameterGroup::kHead:
      return "head";
  }
  return "?";
}

std::string base_parameter_name(const std::string& name) {
  return starts_with(name, "bert.") ? name.substr(5) : name;
}

bool is_adapter_parameter(const std::string& name) {
  return starts_with(name, "adapters.") || contains(name, ".adapters.");
}

bool is_fusion_parameter(const std::string& name) {
  return container_key(name, kFusions).has_value();
}

bool is_adapter_parameter(const std::string& name, const std::string& adapter) {
  return container_part(name, kAdapters, adapter) != std::string::npos;
}

std::string rename_task_parameter(const std::string& name, const std::string& from,
                                  const std::string& to) {
  for (const std::string container : {kAdapters, kFusions, kTasks}) {
    const size_t at = container_part(name, container, from);
    if (at == std::string::npos) continue;
    const size_t length = container.size() + 1 + from.size();
    return name.substr(0, at) + container + "." + to + name.substr(at + length);
  }
  return name;
}

std::optional<std::string> parameter_task(const std::string& name) {
  if (auto adapter = container_key(name, kAdapters)) return adapter;
  if (auto fusion = container_key(name, kFusions)) return fusion;
  return container_key(name, kTasks);
}

bool is_task_copy_parameter(const std::string& name) {
  return !is_adapter_parameter(name) && container_key(name, kTasks).has_value();
}

std::string shared_parameter_name(const std::string& name) {
  if (is_adapter_parameter(name)) return name;
  const std::optional<std::string> task = container_key(name, kTasks);
  if (!task) return name;
  const size_t at = container_part(name, kTasks, *task);
  return name.substr(0, at) + name.substr(at + std::string(kTasks).size() + task->size() + 2);
}

ParameterGroup classify_parameter(const std::string& full_name) {
  // Adapters first: they sit inside attention and output modules.
  if (is_adapter_parameter(full_name) || is_fusion_parameter(full_name)) {
    return ParameterGroup::kAdapter;
  }
  // A task's copy belongs to the group of the tensor it stands for.
  if (is_task_copy_parameter(full_name))
    return classify_parameter(shared_parameter_name(full_name));
  if (starts_with(full_name, "classifier.") || starts_with(full_name, "cls.") ||
      starts_with(full_name, "heads.") || starts_with(full_name, "qa_outputs.")) {
    return ParameterGroup::kHead;  // a head's own LayerNorm (cls.predictions.transform) too
  }
  const std::string name = base_parameter_name(full_name);
  if (contains(name, "LayerNorm.")) return ParameterGroup::kLayerNorm;
  if (starts_with(name, "embeddings.")) return ParameterGroup::kEmbeddings;
  if (starts_with(name, "pooler.")) return ParameterGroup::kPooler;
  if (starts_with(name, "encoder.layer.")) {
    if (contains(name, ".attention.")) return ParameterGroup::kAttention;
    if (contains(name, ".intermediate.") || contains(name, ".output.")) {
      return ParameterGroup::kFeedForward;
    }
  }
  throw Error("parameter \"" + full_name + "\" belongs to no known group");
}

std::optional<int64_t> encoder_layer_of(const std::string& name) {
  const std::string base = base_parameter_name(name);
  const std::string prefix = "encoder.layer.";
  if (!starts_with(base, prefix)) return std::nullopt;
  const size_t end = base.find('.', prefix.size());
  const std::string digits = base.substr(prefix.size(), end - prefix.size());
  if (digits.empty() || digits.size() > 6 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoll(digits);
}

}  // namespace adaptertune
