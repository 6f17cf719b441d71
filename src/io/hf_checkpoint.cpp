#include "adaptertune/io/hf_checkpoint.h"

#include <algorithm>
#include <map>
#include <sstream>

#include <ATen/ATen.h>

#include "adaptertune/bert_for_masked_lm.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/parameter_names.h"
#include "json_util.h"
#include "parameter_assignment.h"

namespace adaptertune {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// TF-era checkpoints name LayerNorm parameters gamma/beta.
std::string modern_name(const std::string& name) {
  if (name.find("LayerNorm") == std::string::npos) return name;
  if (ends_with(name, ".gamma")) return name.substr(0, name.size() - 6) + ".weight";
  if (ends_with(name, ".beta")) return name.substr(0, name.size() - 5) + ".bias";
  return name;
}

std::string list_names(const std::vector<std::string>& names, size_t limit = 8) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > limit) out += ", … (" + std::to_string(names.size() - limit) + " more)";
  return out;
}

}  // namespace

bool LoadReport::missing_any(ParameterGroup group) const {
  return std::any_of(missing.begin(), missing.end(), [group](const std::string& name) {
    return classify_parameter(name) == group;
  });
}

bool LoadReport::ignored_span_head() const {
  return std::any_of(ignored.begin(), ignored.end(),
                     [](const std::string& name) { return starts_with(name, "qa_outputs."); });
}

void LoadReport::require_all_except(const std::string& source,
                                    std::initializer_list<ParameterGroup> optional_groups) const {
  std::vector<std::string> required;
  for (const auto& name : missing) {
    const ParameterGroup group = classify_parameter(name);
    if (std::find(optional_groups.begin(), optional_groups.end(), group) == optional_groups.end())
      required.push_back(name);
  }
  if (!required.empty()) {
    throw Error(source + ": the checkpoint lacks " + std::to_string(required.size()) +
                " base-model tensors: " + list_names(required));
  }
}

std::string LoadReport::summary() const {
  std::ostringstream out;
  out << loaded.size() << " tensors loaded";
  if (!missing.empty()) out << "; " << missing.size() << " missing (" << list_names(missing) << ")";
  if (!unexpected.empty()) {
    out << "; " << unexpected.size() << " unexpected (" << list_names(unexpected) << ")";
  }
  if (!ignored.empty()) out << "; " << ignored.size() << " ignored (" << list_names(ignored) << ")";
  return out.str();
}

LoadReport load_state_dict(torch::nn::Module& model, const NamedTensors& tensors,
                           const std::string& source) {
  auto parameters = model.named_parameters();
  const bool model_has_head = parameters.contains("classifier.weight");
  detail::ParameterAssignment assignment(source);
  LoadReport report;
  for (const auto& [key, tensor] : tensors) {
    const std::string name = modern_name(key);
    std::string target;
    if (parameters.contains(name)) {
      target = name;
    } else if (parameters.contains("bert." + name)) {
      target = "bert." + name;
    } else if (parameters.contains(base_parameter_name(name))) {
      target = base_parameter_name(name);
    }
    if (target.empty()) {
      // Another model class's head (a classifier's, a span head's, the masked LM's) is
      // expected in a checkpoint of that class.
      const bool known_extra = starts_with(name, "cls.") || ends_with(name, "position_ids") ||
                               (starts_with(name, "classifier.") && !model_has_head) ||
                               starts_with(name, "qa_outputs.");
      (known_extra ? report.ignored : report.unexpected).push_back(key);
      continue;
    }
    assignment.add(target, parameters[target], key, tensor);
  }
  for (const auto& item : parameters) {
    // A task's tensors (adapters, copies, heads) are never part of a base checkpoint.
    if (parameter_task(item.key())) continue;
    (assignment.contains(item.key()) ? report.loaded : report.missing).push_back(item.key());
  }
  assignment.copy_all();
  return report;
}

NamedTensors read_hf_weights(const std::string& directory) {
  const std::string single = directory + "/model.safetensors";
  const std::string index_path = directory + "/model.safetensors.index.json";
  if (optional_file_exists(single)) return load_safetensors(single);
  if (!optional_file_exists(index_path)) {
    throw Error(directory +
                ": no model.safetensors or model.safetensors.index.json (a "
                "pytorch_model.bin checkpoint must be converted to safetensors first)");
  }
  detail::Json index = detail::parse_json(read_file(index_path), index_path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    throw Error(index_path + ": expected an object with a \"weight_map\" object");
  }
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it->is_string())
      throw Error(index_path + ": weight_map[\"" + it.key() + "\"] is not a file name");
    const std::string shard = it->get<std::string>();
    if (shard.find('/') != std::string::npos) {
      throw Error(index_path + ": shard name \"" + shard + "\" must be a file in the directory");
    }
    by_shard[shard].push_back(it.key());
  }
  NamedTensors out;
  for (const auto& [shard, names] : by_shard) {
    SafetensorsFile file(directory + "/" + shard);
    for (const auto& name : names) {
      if (!file.contains(name)) {
        throw Error(index_path + ": tensor \"" + name + "\" is listed in " + shard +
                    " but that file does not hold it");
      }
      out.emplace_back(name, file.tensor(name));
    }
  }
  return out;
}

BertModel load_bert_model(const std::string& directory, LoadReport* report) {
  BertModel model(BertConfig::from_file(directory + "/config.json"));
  LoadReport r = load_state_dict(*model, read_hf_weights(directory), directory);
  model->set_pooler_pretrained(!r.missing_any(ParameterGroup::kPooler));
  r.require_all_except(directory, {ParameterGroup::kPooler});
  if (report != nullptr) *report = std::move(r);
  return model;
}

namespace {

// The classifier `directory`'s config.json describes, with `head` (when given) for its head, as
// BERT initialises it.
BertForSequenceClassification classifier_of_config(const std::string& directory,
                                                   const std::optional<HeadConfig>& head) {
  const std::string config_path = directory + "/config.json";
  const std::string config_text = read_file(config_path);
  BertConfig config = BertConfig::from_json_string(config_text, config_path);
  return BertForSequenceClassification(
      config, head ? *head : HeadConfig::from_model_config(config_text, config_path));
}

}  // namespace

BertForSequenceClassification init_bert_for_sequence_classification(
    const std::string& directory, const std::optional<HeadConfig>& head) {
  BertForSequenceClassification model = classifier_of_config(directory, head);
  model->bert->set_pooler_pretrained(false);
  return model;
}

BertForSequenceClassification load_bert_for_sequence_classification(
    const std::string& directory, const std::optional<HeadConfig>& head, LoadReport* report) {
  BertForSequenceClassification model = classifier_of_config(directory, head);
  const HeadConfig& head_config = model->head_config();
  NamedTensors tensors = read_hf_weights(directory);
  // A checkpoint head of another size (another task) is left out rather than refused.
  NamedTensors usable;
  std::vector<std::string> skipped_head;
  for (auto& entry : tensors) {
    if (starts_with(entry.first, "classifier.") && entry.second.size(0) != head_config.num_labels) {
      skipped_head.push_back(entry.first);
      continue;
    }
    usable.push_back(std::move(entry));
  }
  LoadReport r = load_state_dict(*model, usable, directory);
  r.ignored.insert(r.ignored.end(), skipped_head.begin(), skipped_head.end());
  for (auto& entry : usable) {
    if (starts_with(entry.first, "qa_outputs.")) r.span_head.push_back(std::move(entry));
  }
  model->bert->set_pooler_pretrained(!r.missing_any(ParameterGroup::kPooler));
  r.require_all_except(directory, {ParameterGroup::kPooler, ParameterGroup::kHead});
  if (report != nullptr) *report = std::move(r);
  return model;
}

BertForQuestionAnswering init_bert_for_question_answering(const std::string& directory) {
  return BertForQuestionAnswering(BertConfig::from_file(directory + "/config.json"));
}

BertForQuestionAnswering load_bert_for_question_answering(const std::string& directory,
                                                          LoadReport* report) {
  BertForQuestionAnswering model = init_bert_for_question_answering(directory);
  LoadReport r = load_state_dict(*model, read_hf_weights(directory), directory);
  r.require_all_except(directory, {ParameterGroup::kPooler, ParameterGroup::kHead});
  if (report != nullptr) *report = std::move(r);
  return model;
}

void save_pretrained(torch::nn::Module& model, const std::string& directory,
                     torch::ScalarType dtype) {
  if (!at::isFloatingType(dtype)) throw Error("save_pretrained: dtype must be floating point");
  const BertModelImpl* bert = dynamic_cast<BertModelImpl*>(&model);
  auto* classifier = dynamic_cast<BertForSequenceClassificationImpl*>(&model);
  auto* span_head = dynamic_cast<BertForQuestionAnsweringImpl*>(&model);
  auto* masked_lm = dynamic_cast<BertForMaskedLMImpl*>(&model);
  if (classifier != nullptr) bert = classifier->bert.get();
  if (span_head != nullptr) bert = span_head->bert.get();
  if (masked_lm != nullptr) bert = masked_lm->bert.get();
  if (bert == nullptr) {
    throw Error(
        "save_pretrained: expected a BertModel, BertForSequenceClassification, "
        "BertForQuestionAnswering or BertForMaskedLM");
  }
  detail::Json config = detail::parse_json(bert->config().to_json_string(), "config");
  if (dtype != at::kFloat)
    config["torch_dtype"] = dtype == at::kBFloat16 ? "bfloat16"
                            : dtype == at::kHalf   ? "float16"
                                                   : "float64";
  if (span_head != nullptr) config["architectures"] = {"BertForQuestionAnswering"};
  if (masked_lm != nullptr) config["architectures"] = {"BertForMaskedLM"};
  if (classifier != nullptr) {
    config["architectures"] = {"BertForSequenceClassification"};
    detail::Json head = detail::parse_json(classifier->head_config().to_json_string(), "head");
    for (auto it = head.begin(); it != head.end(); ++it) config[it.key()] = it.value();
  }
  NamedTensors tensors;
  for (const auto& item : model.named_parameters()) {
    if (parameter_task(item.key())) continue;  // tasks travel as adapter packs
    tensors.emplace_back(item.key(), item.value().detach().to(at::kCPU, dtype));
  }
  make_directories(directory);
  // Weights first, config last: a directory with a config.json is complete.
  save_safetensors(directory + "/model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomic(directory + "/config.json", json_text(config, 2) + "\n");
}

}  // namespace adaptertune
