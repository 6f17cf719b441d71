#include "adaptertune/inference/predictor.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/device.h"
#include "adaptertune/error.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/parameter_names.h"
#include "adaptertune/tasks/batcher.h"

namespace adaptertune {
namespace {

constexpr int64_t kDefaultMaxLength = 128;

std::string label_name(const HeadConfig& head, size_t index) {
  if (index < head.id2label.size()) return head.id2label[index];
  return "LABEL_" + std::to_string(index);
}

}  // namespace

TaskRequest parse_task_request(const std::string& json_line, const std::string& where) {
  nlohmann::json input;
  try {
    input = nlohmann::json::parse(json_line);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": invalid JSON: " + e.what());
  }
  if (!input.is_object() || !input.contains("text") || !input["text"].is_string()) {
    throw Error(where + ": expected {\"text\": string}");
  }
  TaskRequest request;
  request.text = input["text"].get<std::string>();
  for (const char* key : {"task", "text_pair"}) {
    if (!input.contains(key) || input[key].is_null()) continue;
    if (!input[key].is_string()) {
      throw Error(where + ": \"" + key + "\" must be a string or null");
    }
    (std::string(key) == "task" ? request.task : request.text_pair) = input[key].get<std::string>();
  }
  for (auto it = input.begin(); it != input.end(); ++it) {
    if (it.key() != "task" && it.key() != "text" && it.key() != "text_pair") {
      throw Error(where + ": unknown key \"" + it.key() +
                  "\" (expected \"task\", \"text\", \"text_pair\")");
    }
  }
  return request;
}

Prediction make_prediction(const HeadConfig& head, std::vector<float> logits,
                           std::optional<std::string> task) {
  Prediction out;
  out.task = std::move(task);
  if (head.problem_type == ProblemType::kRegression) {
    out.score = logits.at(0);
  } else {
    const float top = *std::max_element(logits.begin(), logits.end());
    std::vector<double> exps;
    double sum = 0;
    for (float l : logits) sum += exps.emplace_back(std::exp(double(l) - double(top)));
    for (size_t i = 0; i < exps.size(); ++i) {
      out.probabilities.emplace_back(label_name(head, i), exps[i] / sum);
    }
    const auto best = std::max_element(logits.begin(), logits.end()) - logits.begin();
    out.label = label_name(head, static_cast<size_t>(best));
  }
  out.logits = std::move(logits);
  return out;
}

std::string Prediction::to_json() const {
  nlohmann::ordered_json out;
  out["task"] = task ? nlohmann::ordered_json(*task) : nlohmann::ordered_json(nullptr);
  if (score) {
    out["score"] = *score;
  } else {
    out["label"] = label.value_or("");
    nlohmann::ordered_json named = nlohmann::ordered_json::object();
    for (const auto& [name, p] : probabilities) named[name] = p;
    out["probabilities"] = named;
  }
  out["logits"] = logits;
  return out.dump();
}

struct Predictor::State {
  BertForSequenceClassification model{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  PredictorOptions options;
  Precision precision = Precision::kFloat32;
  std::vector<std::string> tasks;
  std::map<std::string, int64_t> max_length;
  std::vector<std::string> warnings;
  int64_t base_bytes = 0;
  std::map<std::string, int64_t> task_bytes;
};

Predictor::Predictor(const std::string& model_directory,
                     const std::vector<std::string>& adapter_packs, PredictorOptions options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  check_device(options.device);
  if (options.batch_size < 1) throw Error("Predictor: batch_size must be at least 1");
  if (options.max_length < 0) throw Error("Predictor: max_length must not be negative");
  s.options = options;
  // Everything that can be checked without the weights first: packs, then the tokenizer.
  std::vector<AdapterPackInfo> infos;
  for (const auto& pack : adapter_packs) infos.push_back(read_adapter_pack_info(pack));
  s.tokenizer = load_tokenizer(model_directory);
  const std::string config_path = model_directory + "/config.json";
  s.model = load_bert_for_sequence_classification(
      model_directory, HeadConfig::from_model_config(read_file(config_path), config_path));
  std::optional<Precision> recorded;
  bool agree = true;
  for (size_t i = 0; i < adapter_packs.size(); ++i) {
    const AdapterPackLoad load = load_adapter_pack(s.model, adapter_packs[i]);
    s.warnings.insert(s.warnings.end(), load.warnings.begin(), load.warnings.end());
    if (!load.head_loaded) {
      s.warnings.push_back("adapter pack " + adapter_packs[i] +
                           " has no head; its task answers with the model directory's head");
    }
    s.tasks.push_back(load.adapter_name);
    s.max_length[load.adapter_name] =
        options.max_length > 0
            ? options.max_length
            : (infos[i].max_length > 0 ? infos[i].max_length : kDefaultMaxLength);
    if (i == 0) recorded = infos[i].precision;
    agree = agree && infos[i].precision == recorded;
  }
  s.precision = options.precision.value_or(agree && recorded ? *recorded : Precision::kFloat32);
  s.model->bert->set_active_adapter(std::nullopt);  // requests name their tasks
  for (const auto& item : s.model->named_parameters()) {
    const int64_t bytes = item.value().numel() * static_cast<int64_t>(item.value().element_size());
    if (auto task = parameter_task(item.key())) {
      s.task_bytes[*task] += bytes;
    } else {
      s.base_bytes += bytes;
    }
  }
  s.model->to(options.device);
  s.model->eval();
}

Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

std::vector<std::string> Predictor::tasks() const {
  return state_->tasks;
}

const HeadConfig& Predictor::head(const std::optional<std::string>& task) const {
  state_->model->bert->tasks().check_known(task);
  return state_->model->head_config(task);
}

int64_t Predictor::max_length(const std::optional<std::string>& task) const {
  if (!task) return state_->options.max_length > 0 ? state_->options.max_length : kDefaultMaxLength;
  state_->model->bert->tasks().check_known(task);
  return state_->max_length.at(*task);
}

Precision Predictor::precision() const {
  return state_->precision;
}

c10::Device Predictor::device() const {
  return state_->options.device;
}

const std::vector<std::string>& Predictor::warnings() const {
  return state_->warnings;
}

int64_t Predictor::base_bytes() const {
  return state_->base_bytes;
}

int64_t Predictor::task_bytes(const std::string& task) const {
  state_->model->bert->tasks().at(task);  // throws for an unknown task
  auto found = state_->task_bytes.find(task);
  return found == state_->task_bytes.end() ? 0 : found->second;
}

std::vector<Prediction> Predictor::predict(const std::optional<std::string>& task,
                                           const std::vector<TextInput>& inputs) const {
  std::vector<TaskRequest> requests;
  requests.reserve(inputs.size());
  for (const auto& input : inputs) requests.push_back({task, input.text, input.text_pair});
  return predict(requests);
}

std::vector<Prediction> Predictor::predict(const std::vector<TaskRequest>& requests) const {
  const State& s = *state_;
  if (requests.empty()) return {};
  EncodedDataset data;
  data.encodings.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const TaskRequest& request = requests[i];
    if (request.task && !s.model->bert->tasks().contains(*request.task)) {
      try {
        s.model->bert->tasks().check_known(request.task);
      } catch (const Error& e) {
        throw Error("request " + std::to_string(i) + ": " + e.what());
      }
    }
    data.encodings.push_back(
        s.tokenizer->encode(request.text, request.text_pair, max_length(request.task)));
  }
  BatcherOptions batching;
  batching.batch_size = s.options.batch_size;
  batching.shuffle = false;
  batching.group_by_length = true;  // less padding; results go back in request order
  batching.pad_id = s.tokenizer->pad_id();
  Batcher batcher(data, batching);
  std::vector<Prediction> out(requests.size());
  torch::NoGradGuard no_grad;
  BertForSequenceClassification model = s.model;  // a handle: forward_routed() changes nothing
  for (const auto& rows : batcher.epoch_order(0)) {
    const Batch batch = batcher.make_batch(rows).to(s.options.device);
    std::vector<std::optional<std::string>> tasks;
    for (size_t row : rows) tasks.push_back(requests[row].task);
    const TaskRouting routing = TaskRouting::per_example(tasks, s.options.device);
    std::vector<at::Tensor> logits;
    {
      AutocastGuard autocast(s.options.device, s.precision);
      logits = model->forward_routed(batch.input_ids, batch.attention_mask, batch.token_type_ids,
                                     routing);
    }
    for (size_t g = 0; g < routing.groups().size(); ++g) {
      const auto& group = routing.groups()[g];
      const at::Tensor cpu = logits[g].to(at::kCPU, at::kFloat).contiguous();
      const float* values = cpu.data_ptr<float>();
      const auto width = static_cast<size_t>(cpu.size(1));
      const HeadConfig& head = model->head_config(group.task);
      for (int64_t k = 0; k < cpu.size(0); ++k) {
        const size_t in_batch = group.rows.defined()
                                    ? static_cast<size_t>(group.row_list[static_cast<size_t>(k)])
                                    : static_cast<size_t>(k);
        const float* row = values + static_cast<size_t>(k) * width;
        out[rows[in_batch]] =
            make_prediction(head, std::vector<float>(row, row + width), group.task);
      }
    }
  }
  return out;
}

}  // namespace adaptertune
