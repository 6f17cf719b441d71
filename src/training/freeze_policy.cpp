#include "adaptertune/training/freeze_policy.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "adaptertune/adapters/adapter_fusion.h"
#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/bert_model.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"

namespace adaptertune {
namespace {

double percent(int64_t part, int64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace

bool FreezePolicy::trains(ParameterGroup group) const {
  if (group == ParameterGroup::kPooler && train_pooler) return true;
  switch (mode) {
    case TrainMode::kFull:
      return true;
    case TrainMode::kAdapters:
      return group == ParameterGroup::kAdapter || group == ParameterGroup::kLayerNorm ||
             group == ParameterGroup::kHead;
    case TrainMode::kAdaptersAndHead:
      return group == ParameterGroup::kAdapter || group == ParameterGroup::kHead;
    case TrainMode::kHead:
      return group == ParameterGroup::kHead;
    case TrainMode::kTopLayers:
      return group == ParameterGroup::kPooler || group == ParameterGroup::kHead;
  }
  return false;
}

void FreezePolicy::check_fits(int64_t num_layers) const {
  if (mode == TrainMode::kTopLayers && (top_layers < 1 || top_layers > num_layers)) {
    throw Error("training mode top-k: top_layers is " + std::to_string(top_layers) +
                ", expected 1 to the model's " + std::to_string(num_layers) +
                " encoder layers (--top-layers K)");
  }
}

bool FreezePolicy::trains_parameter(const std::string& name, int64_t num_layers) const {
  const ParameterGroup group = classify_parameter(name);
  if (trains(group)) return true;
  if (mode != TrainMode::kTopLayers) return false;
  const std::optional<int64_t> layer = encoder_layer_of(name);
  return layer && *layer >= num_layers - top_layers &&
         (group == ParameterGroup::kAttention || group == ParameterGroup::kFeedForward ||
          group == ParameterGroup::kLayerNorm);
}

FreezePolicy FreezePolicy::from_name(const std::string& name) {
  FreezePolicy policy;
  if (name == "adapters") {
    policy.mode = TrainMode::kAdapters;
  } else if (name == "adapters-head") {
    policy.mode = TrainMode::kAdaptersAndHead;
  } else if (name == "full") {
    policy.mode = TrainMode::kFull;
  } else if (name == "head") {
    policy.mode = TrainMode::kHead;
  } else if (name.rfind("top-", 0) == 0 &&
             (name == "top-k" || (name.size() > 4 && name.size() < 11 &&
                                  name.find_first_not_of("0123456789", 4) == std::string::npos))) {
    policy.mode = TrainMode::kTopLayers;
    if (name != "top-k") policy.top_layers = std::stoll(name.substr(4));
  } else {
    throw Error("unknown training mode \"" + name +
                "\" (expected adapters, adapters-head, full, head or top-k)");
  }
  return policy;
}

std::string FreezePolicy::name() const {
  switch (mode) {
    case TrainMode::kAdapters:
      return "adapters";
    case TrainMode::kAdaptersAndHead:
      return "adapters-head";
    case TrainMode::kFull:
      return "full";
    case TrainMode::kHead:
      return "head";
    case TrainMode::kTopLayers:
      return top_layers > 0 ? "top-" + std::to_string(top_layers) : "top-k";
  }
  return "?";
}

void check_policy_trains_adapter(const FreezePolicy& policy, const std::string& adapter_name) {
  if (policy.mode == TrainMode::kAdapters || policy.mode == TrainMode::kAdaptersAndHead) return;
  throw Error("training mode \"" + policy.name() + "\" with adapter \"" + adapter_name +
              "\" would freeze the adapter and keep the best model as a model directory, which "
              "cannot hold adapters; train the adapter (mode adapters or adapters-head) or "
              "train without one");
}

bool default_train_pooler(const BertModelImpl& base) {
  return !base.pooler_pretrained();
}

namespace {

// Sets requires_grad as `policy` says on the tensors owned by one of `tasks` (std::nullopt: by no
// task, i.e. the base and the model's own head); everything else is frozen.
int64_t train_tasks(torch::nn::Module& model, const FreezePolicy& policy,
                    const std::vector<std::optional<std::string>>& tasks) {
  const auto parameters = model.named_parameters();
  int64_t layers = 0;
  for (const auto& item : parameters) {
    if (auto layer = encoder_layer_of(item.key())) layers = std::max(layers, *layer + 1);
  }
  policy.check_fits(layers);
  int64_t trainable = 0;
  for (auto& item : parameters) {
    const std::optional<std::string> owner = parameter_task(item.key());
    const bool train = std::find(tasks.begin(), tasks.end(), owner) != tasks.end() &&
                       policy.trains_parameter(item.key(), layers);
    item.value().set_requires_grad(train);
    if (train) trainable += item.value().numel();
  }
  return trainable;
}

// Gives `task` the copies and head that `policy` trains (see prepare_task_training()).
void add_task_training_tensors(BertForSequenceClassificationImpl& model, const std::string& task,
                               const FreezePolicy& policy) {
  check_policy_trains_adapter(policy, task);
  BertModelImpl& bert = *model.bert;
  bert.tasks().at(task);  // throws when there is no such task
  if (policy.trains(ParameterGroup::kLayerNorm)) bert.add_layer_norm_copies(task);
  if (bert.pooler && (policy.trains(ParameterGroup::kPooler) || !bert.pooler_pretrained())) {
    bert.add_pooler_copy(task);
  }
  if (!model.has_task_head(task)) model.add_task_head(task, model.head_config());
}

}  // namespace

int64_t prepare_task_training(BertForSequenceClassificationImpl& model, const std::string& task,
                              const FreezePolicy& policy) {
  return prepare_task_training(model, std::vector<std::string>{task}, policy);
}

int64_t prepare_task_training(BertForSequenceClassificationImpl& model,
                              const std::vector<std::string>& tasks, const FreezePolicy& policy) {
  if (tasks.empty()) throw Error("prepare_task_training: no task to train");
  std::vector<std::optional<std::string>> owners;
  for (const auto& task : tasks) {
    if (std::find(owners.begin(), owners.end(), task) != owners.end()) {
      throw Error("prepare_task_training: task \"" + task + "\" is named twice");
    }
    add_task_training_tensors(model, task, policy);
    owners.emplace_back(task);
  }
  return train_tasks(model, policy, owners);
}

int64_t prepare_task_training(BertForQuestionAnsweringImpl& model, const std::string& task,
                              const FreezePolicy& policy) {
  check_policy_trains_adapter(policy, task);
  model.bert->tasks().at(task);  // throws when there is no such task
  if (policy.trains(ParameterGroup::kLayerNorm)) model.bert->add_layer_norm_copies(task);
  int64_t trainable = train_tasks(model, policy, {task});
  if (policy.trains(ParameterGroup::kHead)) {
    for (auto& parameter : model.qa_outputs->parameters()) {
      parameter.set_requires_grad(true);
      trainable += parameter.numel();
    }
  }
  return trainable;
}

int64_t apply_freeze_policy(torch::nn::Module& model, const FreezePolicy& policy,
                            const std::optional<std::string>& task) {
  if (!task && policy.trains(ParameterGroup::kAdapter) && policy.mode != TrainMode::kFull) {
    throw Error("training mode \"" + policy.name() +
                "\" trains a task's adapters: name the task to train");
  }
  return train_tasks(model, policy, {task});
}

std::vector<torch::Tensor> trainable_parameters(const torch::nn::Module& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model.parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

int64_t ParameterReport::total() const {
  int64_t sum = 0;
  for (const auto& row : rows) sum += row.total;
  return sum;
}

int64_t ParameterReport::trainable() const {
  int64_t sum = 0;
  for (const auto& row : rows) sum += row.trainable;
  return sum;
}

int64_t ParameterReport::count(ParameterGroup group) const {
  for (const auto& row : rows) {
    if (row.group == group) return row.total;
  }
  return 0;
}

std::string ParameterReport::to_table() const {
  std::ostringstream out;
  char line[160];
  std::snprintf(line, sizeof line, "%-12s %15s %15s %11s\n", "group", "parameters", "trainable",
                "trainable %");
  out << line;
  auto row_line = [&](const std::string& name, int64_t total, int64_t trainable) {
    std::snprintf(line, sizeof line, "%-12s %15s %15s %10.3f%%\n", name.c_str(),
                  with_commas(total).c_str(), with_commas(trainable).c_str(),
                  percent(trainable, total));
    out << line;
  };
  for (const auto& row : rows) row_line(parameter_group_name(row.group), row.total, row.trainable);
  row_line("total", total(), trainable());
  // Full fine-tuning has no adapter to set against the base: say so rather than "0.000%".
  if (count(ParameterGroup::kAdapter) == 0) {
    out << "no adapters (" << with_commas(base()) << " base parameters)\n";
  } else {
    std::snprintf(line, sizeof line, "adapters are %.3f%% of the base model (%s base parameters)\n",
                  percent(count(ParameterGroup::kAdapter), base()), with_commas(base()).c_str());
    out << line;
  }
  return out.str();
}

std::string ParameterReport::to_json_string() const {
  nlohmann::ordered_json groups = nlohmann::ordered_json::object();
  for (const auto& row : rows) {
    groups[parameter_group_name(row.group)] = {{"total", row.total}, {"trainable", row.trainable}};
  }
  nlohmann::ordered_json j = {
      {"total", total()},
      {"trainable", trainable()},
      {"trainable_percent", percent(trainable(), total())},
      {"base", base()},
      {"adapter", count(ParameterGroup::kAdapter)},
      {"adapter_percent_of_base", percent(count(ParameterGroup::kAdapter), base())},
      {"head", count(ParameterGroup::kHead)},
      {"task_parameters", task_parameters},
      {"groups", groups},
  };
  return json_text(j);
}

ParameterReport parameter_report(const torch::nn::Module& model,
                                 const std::optional<std::string>& task) {
  std::map<ParameterGroup, ParameterReport::Row> rows;
  int64_t task_parameters = 0, base_parameters = 0;
  for (ParameterGroup group : all_parameter_groups()) rows[group].group = group;
  const auto parameters = model.named_parameters();
  bool own_head = false;
  for (const auto& item : parameters) {
    own_head = own_head || (task && parameter_task(item.key()) == task &&
                            classify_parameter(item.key()) == ParameterGroup::kHead);
  }
  // A fusion ("a,b": only fusions have ',' in their names) runs the adapters it fuses too.
  std::set<std::string> fused;
  if (task) {
    for (auto& name : fused_adapter_names(*task)) fused.insert(name);
  }
  for (const auto& item : parameters) {
    const ParameterGroup group = classify_parameter(item.key());
    const std::optional<std::string> owner = parameter_task(item.key());
    const bool fused_adapter = owner && fused.count(*owner) && is_adapter_parameter(item.key());
    if (task && !fused_adapter &&
        (owner ? owner != task : (group == ParameterGroup::kHead && own_head))) {
      continue;
    }
    auto& row = rows[group];
    row.total += item.value().numel();
    if (item.value().requires_grad()) row.trainable += item.value().numel();
    if (parameter_task(item.key())) {
      task_parameters += item.value().numel();
    } else if (group != ParameterGroup::kHead) {
      base_parameters += item.value().numel();
    }
  }
  ParameterReport report;
  report.task_parameters = task_parameters;
  report.base_parameters = base_parameters;
  for (ParameterGroup group : all_parameter_groups()) report.rows.push_back(rows[group]);
  return report;
}

}  // namespace adaptertune
