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

// Where adapter `adapter`'s part of a name starts, or npos.
size_t adapter_part(const std::string& name, const std::string& adapter) {
  const std::string marker = "adapters." + adapter + ".";
  if (starts_with(name, marker)) return 0;
  const size_t at = name.find("." + marker);
  return at == std::string::npos ? at : at + 1;
}

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

bool is_adapter_parameter(const std::string& name, const std::string& adapter) {
  return adapter_part(name, adapter) != std::string::npos;
}

std::string rename_adapter_parameter(const std::string& name, const std::string& from,
                                     const std::string& to) {
  const size_t at = adapter_part(name, from);
  if (at == std::string::npos) return name;
  const size_t length = std::string("adapters.").size() + from.size();
  return name.substr(0, at) + "adapters." + to + name.substr(at + length);
}

ParameterGroup classify_parameter(const std::string& full_name) {
  // Adapters first: they sit inside attention and output modules.
  if (is_adapter_parameter(full_name)) return ParameterGroup::kAdapter;
  if (starts_with(full_name, "classifier.") || starts_with(full_name, "cls.") ||
      starts_with(full_name, "heads.")) {
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

}  // namespace adaptertune
