#include "adaptertune/io/adapter_pack.h"

#include <algorithm>
#include <functional>
#include <map>
#include <unordered_map>
#include <utility>

#include <ATen/ATen.h>

#include "adaptertune/adapters/adapter_fusion.h"
#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/parameter_names.h"
#include "adaptertune/version.h"
#include "io/flex_head.h"
#include "json_util.h"
#include "parameter_assignment.h"
#include "sha256.h"

namespace adaptertune {
namespace {

const char* kConfigFile = "adapter_config.json";
const char* kWeightsFile = "adapter.safetensors";
const char* kHeadConfigFile = "head_config.json";
const char* kHeadWeightsFile = "model_head.safetensors";
const char* kFusionConfigFile = "adapter_fusion_config.json";
const char* kFusionWeightsFile = "model_adapter_fusion.safetensors";

// Where a pack's config and weights are: AdapterHub's adapter or fusion file names.
struct PackFiles {
  std::string config, weights;
};
PackFiles pack_files(const std::string& directory, bool fusion) {
  return {directory + "/" + (fusion ? kFusionConfigFile : kConfigFile),
          directory + "/" + (fusion ? kFusionWeightsFile : kWeightsFile)};
}

// The parameters of task `task` under the names a pack gives them, split into the head and the
// rest: adapters keep theirs (AdapterHub's), the task's copies and head take the names of the
// tensors they stand for (Hugging Face's), which is what shared_parameter_name() gives.
struct TaskTensors {
  std::vector<std::pair<std::string, at::Tensor>> weights, head;
};

// What the pack code needs of a model class with a head: its module, its base, and how its
// tasks' heads work. A classifier gives each task a head of its own; a span model has one head,
// which every task runs.
struct PackModel {
  torch::nn::Module& module;
  BertModelImpl& bert;
  /// "BertForSequenceClassification" or "BertForQuestionAnswering".
  const char* model_class;
  /// Whether task `task` has a head of its own (else it runs the model's).
  std::function<bool(const std::string&)> own_head;
  /// The head config JSON that `task` runs (head_config.json without AdapterHub's keys).
  std::function<detail::Json(const std::string&)> head_json;
  /// Gives `task` its own head for `head` (classifier only; nullptr: the model's head is used).
  std::function<void(const std::string&, const HeadConfig&)> add_head;
  /// Removes task `task` and whatever head it has of its own.
  std::function<void(const std::string&)> remove_task;
  /// Whether the head reads the pooler: a span head does not, so a pooler that is not part of
  /// the base checkpoint (initialised afresh at each load) is no part of the base's identity.
  bool uses_pooler = true;
};

PackModel pack_model(BertForSequenceClassification& model) {
  BertForSequenceClassificationImpl* m = model.get();
  return {*m,
          *m->bert,
          "BertForSequenceClassification",
          [m](const std::string& task) { return m->has_task_head(task); },
          [m](const std::string& task) {
            return detail::parse_json(m->head_config(task).to_json_string(), "head");
          },
          [m](const std::string& task, const HeadConfig& head) { m->add_task_head(task, head); },
          [m](const std::string& task) { m->remove_task(task); }};
}

PackModel pack_model(BertForQuestionAnswering& model) {
  BertForQuestionAnsweringImpl* m = model.get();
  return {*m,
          *m->bert,
          "BertForQuestionAnswering",
          [](const std::string&) { return false; },
          [](const std::string&) {
            return detail::Json{{"head_type", "question_answering"}, {"num_labels", 2}};
          },
          nullptr,
          [m](const std::string& task) { m->bert->remove_adapter(task); },
          /*uses_pooler=*/false};
}

detail::Json question_answering_record(const QuestionAnsweringOptions& qa) {
  return {{"doc_stride", qa.features.stride()},
          {"max_query_length", qa.features.query_length()},
          {"n_best", qa.answers.n_best},
          {"max_answer_length", qa.answers.max_answer_length},
          {"null_score_threshold", qa.answers.null_score_threshold},
          {"allow_no_answer", qa.answers.allow_no_answer}};
}

// A span pack's `question_answering` record (question_answering_record()), read from
// `path`, for windows of `max_length` tokens (0: not recorded, the default length then).
QuestionAnsweringOptions read_question_answering(const detail::Json& value, const std::string& path,
                                                 int64_t max_length) {
  detail::JsonObjectReader reader(value, path + " (adaptertune.question_answering)");
  reader.require(
      {"doc_stride", "max_query_length", "n_best", "max_answer_length", "null_score_threshold"});
  QuestionAnsweringOptions qa;
  if (max_length > 0) qa.features.max_length = max_length;
  int64_t doc_stride = 0, max_query_length = 0;
  const std::pair<const char*, int64_t*> counts[] = {
      {"doc_stride", &doc_stride},
      {"max_query_length", &max_query_length},
      {"n_best", &qa.answers.n_best},
      {"max_answer_length", &qa.answers.max_answer_length}};
  for (const auto& [key, out] : counts) {
    reader.read(key, *out);
    if (*out < 1) reader.fail(key, "a count of at least 1");
  }
  qa.features.doc_stride = doc_stride;
  qa.features.max_query_length = max_query_length;
  reader.read("null_score_threshold", qa.answers.null_score_threshold);
  // Absent in packs written before it was recorded: they answered with a span.
  reader.read("allow_no_answer", qa.answers.allow_no_answer);
  reader.finish();
  if (max_length > 0) {
    // The windows' own rule (the counts above are at least 1, so only the room can fail),
    // reported as the record's key.
    try {
      qa.features.validate();
    } catch (const Error&) {
      reader.fail("max_query_length", "at most max_length " + std::to_string(max_length) +
                                          " - 4, to leave room for context");
    }
  }
  return qa;
}

// A recorded `precision` ("fp32", "bf16" or "fp16"; null: not recorded), read by `reader`.
std::optional<Precision> read_precision(const detail::Json& value,
                                        detail::JsonObjectReader& reader) {
  if (value.is_null()) return std::nullopt;
  const char* expected = "\"fp32\", \"bf16\" or \"fp16\"";
  if (!value.is_string()) reader.fail("precision", expected);
  try {
    return parse_precision(value.get<std::string>());
  } catch (const Error&) {
    reader.fail("precision", expected);
  }
}

// Whether a pack's head (`head`, read from head_config.json at `path`) is a span head. Only the
// two keys that say so are read here: HeadConfig::from_model_config() reads the rest of a
// classification head's file.
bool is_span_head(const detail::Json& head, const std::string& path) {
  detail::JsonObjectReader reader(head, path);  // Error for anything but an object
  std::string head_type;
  std::string model_class;
  reader.read("head_type", head_type);
  reader.read("model_class", model_class);
  return head_type == "question_answering" || model_class == "BertForQuestionAnswering";
}

// The tensors of `task` and, when it has no head of its own, the model's head, which it runs.
bool task_runs(const PackModel& model, const std::string& name, const std::string& task) {
  const std::optional<std::string> owner = parameter_task(name);
  return owner == task ||
         (!owner && classify_parameter(name) == ParameterGroup::kHead && !model.own_head(task));
}

TaskTensors task_tensors(const PackModel& model, const std::string& task) {
  TaskTensors out;
  const bool own_head = model.own_head(task);
  for (const auto& item : model.module.named_parameters()) {
    const bool head = classify_parameter(item.key()) == ParameterGroup::kHead;
    const std::optional<std::string> owner = parameter_task(item.key());
    if (owner == task) {
      (head ? out.head : out.weights).emplace_back(shared_parameter_name(item.key()), item.value());
    } else if (!owner && head && !own_head) {
      out.head.emplace_back(item.key(), item.value());  // the model's head, which the task runs
    }
  }
  return out;
}

}  // namespace

std::string base_config_sha256(const BertConfig& config) {
  detail::Sha256 sha;
  sha.update(config.to_json_string());
  return sha.hex_digest();
}

namespace {

// base_weights_sha256() for several (layer_norms, pooler) choices in one pass over the weights.
std::vector<std::string> base_weights_sha256s(torch::nn::Module& model,
                                              const std::vector<std::pair<bool, bool>>& choices) {
  struct Entry {
    std::string name;
    at::Tensor tensor;
    ParameterGroup group;
  };
  std::vector<Entry> base;
  for (const auto& item : model.named_parameters()) {
    const ParameterGroup group = classify_parameter(item.key());
    if (parameter_task(item.key()) || group == ParameterGroup::kHead) continue;
    // Hash under the BertModel name, so that a bare BertModel and a classifier agree.
    base.push_back({base_parameter_name(item.key()), item.value(), group});
  }
  std::sort(base.begin(), base.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
  std::vector<detail::Sha256> hashes(choices.size());
  for (const Entry& entry : base) {
    at::Tensor data = entry.tensor.detach().to(at::kCPU, at::kFloat).contiguous();
    for (size_t i = 0; i < choices.size(); ++i) {
      const auto [layer_norms, pooler] = choices[i];
      if ((layer_norms && entry.group == ParameterGroup::kLayerNorm) ||
          (pooler && entry.group == ParameterGroup::kPooler)) {
        continue;
      }
      hashes[i].update(entry.name);
      hashes[i].update(data.data_ptr(), static_cast<size_t>(data.numel()) * sizeof(float));
    }
  }
  std::vector<std::string> hex;
  for (auto& sha : hashes) hex.push_back(sha.hex_digest());
  return hex;
}

}  // namespace

std::string base_weights_sha256(torch::nn::Module& model, bool layer_norms, bool pooler) {
  return base_weights_sha256s(model, {{layer_norms, pooler}}).front();
}

BaseWeightsIdentity BaseWeightsIdentity::of(torch::nn::Module& model) {
  BaseWeightsIdentity identity;
  const std::vector<std::string> hex =
      base_weights_sha256s(model, {{false, false}, {false, true}, {true, false}, {true, true}});
  std::copy(hex.begin(), hex.end(), identity.sha256_.begin());
  return identity;
}

const std::string& BaseWeightsIdentity::sha256(bool layer_norms, bool pooler) const {
  return sha256_[(layer_norms ? 2 : 0) + (pooler ? 1 : 0)];
}

namespace {

// Throws Error naming the fusion pack at `directory` unless `loaded` says yes to each adapter
// it fuses.
void check_fused_adapters(const AdapterPackInfo& info, const std::string& directory,
                          const std::function<bool(const std::string&)>& loaded) {
  std::string missing;
  for (const auto& adapter : info.fused) {
    if (!loaded(adapter)) missing += (missing.empty() ? "" : ", ") + adapter;
  }
  if (!missing.empty()) {
    throw Error(directory + ": the fusion " + info.name + " needs the adapters it fuses; " +
                missing + " not loaded (load their adapter packs first)");
  }
}

}  // namespace

void check_fused_adapters(const std::vector<AdapterPackInfo>& infos,
                          const std::vector<std::string>& directories) {
  for (size_t i = 0; i < infos.size(); ++i) {
    check_fused_adapters(infos[i], directories.at(i), [&](const std::string& name) {
      return std::any_of(infos.begin(), infos.end(), [&](const AdapterPackInfo& other) {
        return !other.fusion && other.name == name;
      });
    });
  }
}

std::vector<std::string> AdapterPackInfo::trained_stack() const {
  return Stack::on_top_of(stacked_on, name).adapters;
}

ModelDirectoryRecord AdapterPackInfo::record() const {
  return {max_length, question_answering, precision};
}

QuestionAnsweringOptions AdapterPackInfo::span_options(const BertConfig& base,
                                                       std::optional<int64_t> length) const {
  return record().span_options(base, length);
}

QuestionAnsweringOptions ModelDirectoryRecord::span_options(const BertConfig& base,
                                                            std::optional<int64_t> length) const {
  QuestionAnsweringOptions qa = question_answering.value_or(QuestionAnsweringOptions{});
  if (length) {
    // A recorded stride and question length belong to windows of the recorded length: windows
    // of another length take their own defaults (a stride at least their room would leave no
    // overlap, a question of the recorded length may leave a shorter window no room).
    if (*length != qa.features.max_length) {
      qa.features.doc_stride.reset();
      qa.features.max_query_length.reset();
    }
    qa.features.max_length = *length;
  } else if (max_length > 0) {
    qa.features.max_length = max_length;
  } else {
    qa.features.max_length = base.default_sequence_length(SquadFeatureOptions{}.max_length);
  }
  return qa;
}

ModelDirectoryRecord read_model_directory_record(const std::string& directory) {
  const std::string path = directory + "/config.json";
  const detail::Json config = detail::parse_json(read_file(path), path);
  ModelDirectoryRecord record;
  if (!config.is_object() || !config.contains("adaptertune")) return record;
  detail::JsonObjectReader reader(config["adaptertune"], path + " (adaptertune)");
  reader.read("max_length", record.max_length);
  if (record.max_length < 0) reader.fail("max_length", "a positive number of tokens");
  if (const detail::Json* precision = reader.take("precision")) {
    record.precision = read_precision(*precision, reader);
  }
  if (const detail::Json* qa = reader.take("question_answering")) {
    record.question_answering = read_question_answering(*qa, path, record.max_length);
  }
  reader.ignore({"library_version"});
  reader.finish();
  return record;
}

void write_model_directory_record(const std::string& directory,
                                  const ModelDirectoryRecord& record) {
  const std::string path = directory + "/config.json";
  detail::Json config = detail::parse_json(read_file(path), path);
  if (!config.is_object()) throw Error(path + ": expected a JSON object");
  detail::Json ours = {{"library_version", version()}};
  if (record.max_length > 0) ours["max_length"] = record.max_length;
  if (record.precision) ours["precision"] = precision_name(*record.precision);
  if (record.question_answering) {
    ours["question_answering"] = question_answering_record(*record.question_answering);
  }
  config["adaptertune"] = ours;
  write_file_atomic(path, json_text(config, 2) + "\n");
}

std::vector<std::string> AdapterPackInfo::missing_below(
    const std::vector<std::string>& loaded) const {
  std::vector<std::string> missing;
  for (const auto& below : stacked_on) {
    if (std::find(loaded.begin(), loaded.end(), below) == loaded.end()) missing.push_back(below);
  }
  return missing;
}

std::vector<size_t> pack_load_order(const std::vector<AdapterPackInfo>& infos) {
  std::vector<size_t> order;
  std::vector<bool> placed(infos.size(), false);
  // How many packs of each name are still to be placed, so that a check costs the names a pack
  // needs rather than every pack again (a server may load thousands).
  std::unordered_map<std::string, size_t> unplaced;
  for (const AdapterPackInfo& info : infos) ++unplaced[info.name];
  // A pack is ready when none of the packs it needs is still to be placed (one that is not among
  // `infos` does not hold it back: loading it is the caller's business; nor does the pack itself).
  auto waits_for = [&](size_t i, const std::vector<std::string>& names) {
    for (const auto& needed : names) {
      const auto found = unplaced.find(needed);
      if (found == unplaced.end()) continue;
      const size_t itself = infos[i].name == needed ? 1 : 0;  // i is not placed yet
      if (found->second > itself) return true;
    }
    return false;
  };
  auto ready = [&](size_t i) {
    return !waits_for(i, infos[i].stacked_on) && !waits_for(i, infos[i].fused);
  };
  // Each pass places the ready adapter packs, or, when none is ready, the ready fusion packs; a
  // pack stacked on a fusion is ready after it. Passes stop when one places nothing: what is left
  // needs itself round a cycle (no training makes that, a hand-edited file can) and goes as
  // given, adapters first, and loading it reports what is missing.
  for (bool progress = true; progress;) {
    progress = false;
    for (const bool fusions : {false, true}) {
      for (size_t i = 0; i < infos.size(); ++i) {
        if (placed[i] || infos[i].fusion.has_value() != fusions || !ready(i)) continue;
        order.push_back(i);
        placed[i] = progress = true;
        --unplaced[infos[i].name];
      }
      if (progress) break;
    }
  }
  for (const bool fusions : {false, true}) {
    for (size_t i = 0; i < infos.size(); ++i) {
      if (!placed[i] && infos[i].fusion.has_value() == fusions) order.push_back(i);
    }
  }
  return order;
}

std::string question_answering_record_json(const QuestionAnsweringOptions& qa) {
  return json_text(question_answering_record(qa));
}

namespace {

// read_adapter_pack_info(), and into `flex` (when given) the AdapterHub flex head its
// head_config.json describes, if it does: what load_pack() needs of that file, read once.
AdapterPackInfo read_pack_info(const std::string& directory,
                               std::optional<detail::FlexHead>* flex_head) {
  if (!directory_exists(directory)) {
    throw Error(directory + ": " + (file_exists(directory) ? "a file" : "no such directory") +
                ", where an adapter pack was expected (a directory holding " + kConfigFile +
                " or " + kFusionConfigFile + ")");
  }
  const bool adapter = optional_file_exists(directory + "/" + kConfigFile);
  const bool fusion = !adapter && optional_file_exists(directory + "/" + kFusionConfigFile);
  if (!adapter && !fusion) {
    throw Error(directory + ": not an adapter pack (it has neither " + kConfigFile + " nor " +
                kFusionConfigFile + ")");
  }
  const std::string path = pack_files(directory, fusion).config;
  detail::Json document = detail::parse_json(read_file(path), path);
  detail::JsonObjectReader reader(document, path);
  AdapterPackInfo info;
  reader.read("name", info.name);
  if (info.name.empty()) reader.fail("name", fusion ? "the fusion's name" : "the adapter's name");
  const detail::Json* config = reader.take("config");
  if (config == nullptr || !config->is_object()) reader.fail("config", "an object");
  if (fusion) {
    info.fusion = FusionConfig::from_json_string(json_text(*config), path + " (config)");
    info.fused = fused_adapter_names(info.name);
    if (info.fused.size() < 2 ||
        std::any_of(info.fused.begin(), info.fused.end(), [](auto& a) { return a.empty(); })) {
      reader.fail("name", "the fused adapters' names joined by ',' (\"a,b\")");
    }
  } else {
    info.config = AdapterConfig::from_json_string(json_text(*config), path + " (config)");
  }
  reader.read("hidden_size", info.hidden_size);
  // The bottleneck the config gives at the pack's hidden size (below 1, or beyond any memory) is
  // this file's fault: named here rather than by the model that adds the adapter.
  if (!fusion && info.hidden_size > 0) {
    try {
      info.config.bottleneck_size(info.hidden_size);
    } catch (const Error& e) {
      throw Error(path + " (config): " + e.what());
    }
  }
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
    if (const detail::Json* precision = sub.take("precision")) {
      info.precision = read_precision(*precision, sub);
    }
    if (const detail::Json* stacked_on = sub.take("stacked_on")) {
      const char* expected = "an array of the names of the adapters below it, bottom first";
      if (!stacked_on->is_array()) sub.fail("stacked_on", expected);
      for (const detail::Json& below : *stacked_on) {
        if (!below.is_string() || below.get<std::string>().empty() ||
            below.get<std::string>() == info.name) {
          sub.fail("stacked_on", expected);
        }
        info.stacked_on.push_back(below.get<std::string>());
      }
    }
    if (const detail::Json* qa = sub.take("question_answering")) {
      info.question_answering = read_question_answering(*qa, path, info.max_length);
    }
    sub.ignore({"library_version"});
    sub.finish();
  }
  reader.finish();
  const std::string head_path = directory + "/" + kHeadConfigFile;
  if (optional_file_exists(head_path)) {
    const std::string head_text = read_file(head_path);
    const detail::Json head = detail::parse_json(head_text, head_path);
    if (const std::optional<detail::FlexHead> flex = detail::read_flex_head(head, head_path)) {
      // Known only when it is readable: load_adapter_pack() refuses the others by name.
      if (flex->unreadable.empty()) {
        info.span_head = flex->span;
        if (!flex->span) info.head = flex->head;
      }
      if (flex_head != nullptr) *flex_head = flex;
    } else if (is_span_head(head, head_path)) {
      info.span_head = true;
    } else {
      info.head = HeadConfig::from_model_config(head_text, head_path);
    }
  }
  return info;
}

}  // namespace

AdapterPackInfo read_adapter_pack_info(const std::string& directory) {
  return read_pack_info(directory, nullptr);
}

namespace {

void save_pack(const PackModel& model, const std::string& adapter_name,
               const std::string& directory, const AdapterPackOptions& options) {
  const TaskEntry& entry = model.bert.tasks().at(adapter_name);  // throws if absent
  const AdapterConfig& config = entry.adapter;
  const PackFiles files = pack_files(directory, entry.is_fusion());
  NamedTensors weights, head;
  const TaskTensors tensors = task_tensors(model, adapter_name);
  for (const auto& [name, value] : tensors.weights) {
    weights.emplace_back(name, value.detach().to(at::kCPU, at::kFloat));
  }
  for (const auto& [name, value] : tensors.head) {
    head.emplace_back(name, value.detach().to(at::kCPU, at::kFloat));
  }
  const BertConfig& base = model.bert.config();
  detail::Json adapter_json =
      entry.is_fusion() ? detail::parse_json(entry.fusion->to_json_string(), "fusion config")
                        : detail::parse_json(config.to_json_string(), "adapter config");
  if (!entry.is_fusion() && config.adapter_size) {
    // AdapterHub reads only reduction_factor: write the one that rebuilds this bottleneck.
    adapter_json["reduction_factor"] =
        AdapterConfig::reduction_factor_for(base.hidden_size, *config.adapter_size);
  }
  detail::Json ours = {
      {"base_config_sha256", base_config_sha256(base)},
      {"base_weights_sha256",
       base_weights_sha256(model.module, entry.layer_norms, entry.pooler || !model.uses_pooler)},
      {"train_mode", options.train_mode},
      {"layer_norms", entry.layer_norms},
      {"pooler", entry.pooler},
      {"library_version", version()}};
  if (options.max_length > 0) ours["max_length"] = options.max_length;
  if (options.precision) ours["precision"] = precision_name(*options.precision);
  if (!options.stacked_on.empty()) ours["stacked_on"] = options.stacked_on;
  if (const auto& qa = options.question_answering) {
    ours["question_answering"] = question_answering_record(*qa);
  }
  detail::Json document = {
      {"name", adapter_name},
      {"config", adapter_json},
      {"hidden_size", base.hidden_size},
      {"model_type", "bert"},
      {"model_class", model.model_class},
      {"model_name", options.base_model_name},
      {"version", std::string("adaptertune-") + version()},
      {"adaptertune", ours},
  };
  make_directories(directory);
  save_safetensors(files.weights, weights, {{"format", "pt"}});
  if (options.include_head) {
    detail::Json head_config = model.head_json(adapter_name);
    head_config["model_class"] = model.model_class;
    head_config["model_type"] = "bert";
    head_config["hidden_size"] = base.hidden_size;
    head_config["name"] = adapter_name;
    head_config["config"] = nullptr;  // AdapterHub's marker for a static (transformers) head
    save_safetensors(directory + "/" + kHeadWeightsFile, head, {{"format", "pt"}});
    write_file_atomic(directory + "/" + kHeadConfigFile, json_text(head_config, 2) + "\n");
  }
  // The config last: a directory with its config file is a complete pack.
  write_file_atomic(files.config, json_text(document, 2) + "\n");
}

}  // namespace

void save_adapter_pack(BertForSequenceClassification& model, const std::string& adapter_name,
                       const std::string& directory, const AdapterPackOptions& options) {
  save_pack(pack_model(model), adapter_name, directory, options);
}

void save_adapter_pack(BertForQuestionAnswering& model, const std::string& adapter_name,
                       const std::string& directory, const AdapterPackOptions& options) {
  save_pack(pack_model(model), adapter_name, directory, options);
}

namespace {

AdapterPackLoad load_pack(const PackModel& model, const std::string& directory,
                          const std::optional<std::string>& load_as, bool load_head,
                          const BaseWeightsIdentity* identity = nullptr) {
  AdapterPackLoad result;
  std::optional<detail::FlexHead> flex;
  result.info = read_pack_info(directory, &flex);
  const AdapterPackInfo& info = result.info;
  result.adapter_name = load_as.value_or(info.name);
  const std::string& task = result.adapter_name;
  if (info.fusion) {
    if (task != info.name) {
      throw Error(directory + ": a fusion is named by the adapters it fuses (\"" + info.name +
                  "\"); it cannot load as \"" + task + "\"");
    }
    check_fused_adapters(info, directory, [&](const std::string& name) {
      return model.bert.tasks().contains(name);
    });
  }
  const BertConfig& base = model.bert.config();
  if (info.hidden_size != 0 && info.hidden_size != base.hidden_size) {
    throw Error(directory + ": the adapter was trained for hidden size " +
                std::to_string(info.hidden_size) + ", this model has " +
                std::to_string(base.hidden_size));
  }
  if (info.pooler && !model.bert.pooler) {
    throw Error(directory + ": the pack carries a pooler and this model has none");
  }
  // An AdapterHub flex head reads as the static layout that computes the same (io/flex_head.h);
  // one with none is refused as what it is, and the adapter alone still loads without it.
  if (load_head && flex && !flex->unreadable.empty()) {
    throw Error(flex->unreadable +
                " (its adapter alone loads: load_head = false, as train --fuse and --stack-on "
                "load packs)");
  }
  const bool with_head = load_head && (info.head.has_value() || info.span_head);
  // AdapterHub's default classification head: its first layer is a pooler of the task's own.
  const bool flex_pooler =
      with_head && flex && flex->layout == detail::FlexHeadLayout::kClsTanhTwoLayers;
  if (flex_pooler && info.pooler) {
    throw Error(directory + ": the pack carries a pooler, and its flex head's first layer reads " +
                "as another (a head of 2 layers with tanh on [CLS])");
  }
  if (flex_pooler && !model.bert.pooler) {
    throw Error(directory + ": the flex head's first layer reads as a pooler of the task's own, " +
                "and this model has no pooler");
  }
  const bool span_model = model.add_head == nullptr;
  if (with_head && info.span_head != span_model) {
    throw Error(directory + ": the pack's head is " +
                (info.span_head ? "a span head (question answering)" : "a sequence head") +
                ", which a " + model.model_class + " cannot run (load it into a " +
                (info.span_head ? "BertForQuestionAnswering" : "BertForSequenceClassification") +
                ", or without its head)");
  }
  // Read and rename everything before touching the model.
  const std::string weights_path = pack_files(directory, info.fusion.has_value()).weights;
  const std::string head_path = directory + "/" + kHeadWeightsFile;
  NamedTensors weights;
  for (auto& [name, tensor] : load_safetensors(weights_path)) {
    weights.emplace_back(rename_task_parameter(name, info.name, task), tensor);
  }
  NamedTensors head;
  if (with_head) head = load_safetensors(head_path);
  if (with_head && flex) {
    // Under the static names; a pooler layer joins the task's other tensors.
    NamedTensors flex_tensors = std::move(head);
    head.clear();
    for (auto& [name, tensor] : detail::static_head_tensors(*flex, flex_tensors, head_path)) {
      const bool pooler = name == detail::kPoolerWeight || name == detail::kPoolerBias;
      (pooler ? weights : head).emplace_back(name, tensor);
    }
  }

  if (info.fusion) {
    model.bert.add_fusion(info.fused, *info.fusion);
  } else {
    model.bert.add_adapter(task, info.config);
  }
  try {
    if (with_head && model.add_head) model.add_head(task, *info.head);
    if (info.layer_norms) model.bert.add_layer_norm_copies(task);
    if (info.pooler || flex_pooler) model.bert.add_pooler_copy(task);
    // The task's tensors by the names the pack gives them; each must come from the pack. A
    // span model's head is the model's own, which the pack's head replaces.
    std::map<std::string, at::Tensor> targets, head_targets;
    for (const auto& item : model.module.named_parameters()) {
      const bool is_head = classify_parameter(item.key()) == ParameterGroup::kHead;
      if (!task_runs(model, item.key(), task) || (is_head && !with_head)) continue;
      (is_head ? head_targets : targets).emplace(shared_parameter_name(item.key()), item.value());
    }
    auto assign = [&](const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, at::Tensor>& places, const char* what) {
      detail::ParameterAssignment assignment(path);
      for (const auto& [name, tensor] : tensors) {
        auto place = places.find(name);
        if (place == places.end()) {
          throw Error(path + ": tensor \"" + name + "\" is not " + what);
        }
        assignment.add(name, place->second, name, tensor);
      }
      for (const auto& [name, place] : places) {
        if (!assignment.contains(name)) {
          throw Error(path + ": lacks tensor \"" + name +
                      "\", which the pack's config says it has");
        }
      }
      return assignment;
    };
    detail::ParameterAssignment adapter_assignment =
        assign(weights_path, weights, targets,
               "this adapter's, nor a LayerNorm or the pooler that adapter_config.json says the "
               "pack carries");
    if (with_head) {
      detail::ParameterAssignment head_assignment =
          assign(head_path, head, head_targets, "a parameter of the pack's head");
      adapter_assignment.copy_all();
      head_assignment.copy_all();
    } else {
      adapter_assignment.copy_all();
    }
  } catch (...) {
    model.remove_task(task);
    throw;
  }
  model.bert.set_active_adapter(task);
  result.head_loaded = with_head;
  const std::string config_hash = base_config_sha256(base);
  // As the pack computed its record (a flex head's pooler is the task's own, but the record,
  // when there is one, was taken as the pack says).
  const bool pooler = info.pooler || !model.uses_pooler;
  const std::string weights_hash =
      identity != nullptr ? identity->sha256(info.layer_norms, pooler)
                          : base_weights_sha256(model.module, info.layer_norms, pooler);
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

}  // namespace

AdapterPackLoad load_adapter_pack(BertForSequenceClassification& model,
                                  const std::string& directory,
                                  const std::optional<std::string>& load_as, bool load_head) {
  return load_pack(pack_model(model), directory, load_as, load_head);
}

AdapterPackLoad load_adapter_pack(BertForSequenceClassification& model,
                                  const std::string& directory, const BaseWeightsIdentity& identity,
                                  const std::optional<std::string>& load_as, bool load_head) {
  return load_pack(pack_model(model), directory, load_as, load_head, &identity);
}

AdapterPackLoad load_adapter_pack(BertForQuestionAnswering& model, const std::string& directory,
                                  const std::optional<std::string>& load_as, bool load_head) {
  return load_pack(pack_model(model), directory, load_as, load_head);
}

AdapterPackLoad load_adapter_pack(BertForQuestionAnswering& model, const std::string& directory,
                                  const BaseWeightsIdentity& identity,
                                  const std::optional<std::string>& load_as, bool load_head) {
  return load_pack(pack_model(model), directory, load_as, load_head, &identity);
}

}  // namespace adaptertune
