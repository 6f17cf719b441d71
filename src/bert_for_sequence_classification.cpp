#include "adaptertune/bert_for_sequence_classification.h"

#include <ATen/ATen.h>

#include "adaptertune/error.h"
#include "dropout.h"
#include "layers/task_copies.h"
#include "shape_check.h"

namespace adaptertune {
namespace {

// The dropout before a head: its own, else the encoder's hidden dropout.
double classifier_dropout(const HeadConfig& head, const BertConfig& config) {
  return head.classifier_dropout >= 0 ? head.classifier_dropout : config.hidden_dropout_prob;
}

}  // namespace

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(const BertConfig& config,
                                                                     const HeadConfig& head)
    : head_(head) {
  head_.validate();
  bert = register_module("bert", BertModel(config));
  dropout = register_module("dropout", torch::nn::Dropout(classifier_dropout(head_, config)));
  classifier =
      register_module("classifier", torch::nn::Linear(config.hidden_size, head_.num_labels));
  init_bert_weights(*classifier, config.initializer_range);
  tasks = register_module("tasks", torch::nn::ModuleDict());
}

LastLayerOutput BertForSequenceClassificationImpl::last_layer_output() const {
  // The head reads the pooler's output alone, which reads the first position of the last layer.
  // Training keeps every position by default: hashed_dropout() hashes each element's index in
  // its tensor, so computing fewer changes the masks a seed draws.
  return is_training() ? training_last_layer_ : evaluation_last_layer_;
}

torch::Tensor BertForSequenceClassificationImpl::head(const std::optional<std::string>& task,
                                                      const torch::Tensor& pooled) const {
  if (task) {
    auto found = head_of_.find(*task);
    if (found != head_of_.end()) {
      torch::nn::Linear own = found->second.classifier;
      const double p = classifier_dropout(found->second.config, bert->config());
      return own(hashed_dropout(pooled, p, is_training()));
    }
  }
  torch::nn::Linear shared = classifier;
  return shared(hashed_dropout(dropout, pooled));
}

torch::Tensor BertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask,
                                                         const torch::Tensor& token_type_ids) {
  const std::optional<std::string> task = bert->active_adapter();
  return head(
      task,
      bert->forward(input_ids, attention_mask, token_type_ids, last_layer_output()).pooler_output);
}

torch::Tensor BertForSequenceClassificationImpl::forward_from(const torch::Tensor& hidden,
                                                              const torch::Tensor& attention_mask,
                                                              int64_t first_layer) {
  return head(
      bert->active_adapter(),
      bert->forward_from(hidden, attention_mask, first_layer, last_layer_output()).pooler_output);
}

std::vector<torch::Tensor> BertForSequenceClassificationImpl::forward_routed(
    const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
    const torch::Tensor& token_type_ids, const TaskRouting& routing) {
  const torch::Tensor pooled =
      bert->forward_routed(input_ids, attention_mask, token_type_ids, routing, last_layer_output())
          .pooler_output;
  std::vector<torch::Tensor> logits;
  for (size_t g = 0; g < routing.groups().size(); ++g) {
    logits.push_back(head(routing.groups()[g].task, routing.select(pooled, g)));
  }
  return logits;
}

void BertForSequenceClassificationImpl::add_task(const std::string& name,
                                                 const AdapterConfig& adapter,
                                                 const HeadConfig& head) {
  head.validate();
  bert->add_adapter(name, adapter);
  try {
    add_task_head(name, head);
  } catch (...) {
    bert->remove_adapter(name);
    throw;
  }
}

void BertForSequenceClassificationImpl::add_task_head(const std::string& name,
                                                      const HeadConfig& head) {
  head.validate();
  bert->tasks().at(name);  // throws when there is no such task
  if (has_task_head(name)) throw Error("task \"" + name + "\" already has a head");
  const BertConfig& config = bert->config();
  torch::nn::Linear own(config.hidden_size, head.num_labels);
  init_bert_weights(*own, config.initializer_range);
  own->to(classifier->weight.device(), classifier->weight.scalar_type());
  detail::add_task_module(tasks, name, "classifier", own);
  head_of_.emplace(name, TaskHead{head, own});
}

void BertForSequenceClassificationImpl::remove_task(const std::string& name) {
  bert->remove_adapter(name);
  if (tasks->contains(name)) {
    tasks->pop(name);
    tasks->unregister_module(name);
  }
  head_of_.erase(name);
}

const HeadConfig& BertForSequenceClassificationImpl::head_config(
    const std::optional<std::string>& task) const {
  if (task) {
    auto found = head_of_.find(*task);
    if (found != head_of_.end()) return found->second.config;
  }
  return head_;
}

torch::Tensor BertForSequenceClassificationImpl::loss(const torch::Tensor& logits,
                                                      const torch::Tensor& labels) const {
  const HeadConfig& head = head_config(bert->active_adapter());
  // A regression head has num_labels 1 (HeadConfig::validate()).
  if (!logits.defined() || logits.dim() != 2 || logits.size(1) != head.num_labels) {
    throw Error("loss: logits must be [batch, " + std::to_string(head.num_labels) +
                "] for the active head, got " + detail::shape_string(logits));
  }
  if (!labels.defined() || labels.dim() != 1 || labels.size(0) != logits.size(0)) {
    throw Error("loss: labels must have shape [" + std::to_string(logits.size(0)) + "], got " +
                detail::shape_string(labels));
  }
  detail::check_device(labels, "loss: labels", logits.device(), "as the logits");
  if (head.problem_type == ProblemType::kRegression) {
    if (!labels.is_floating_point()) throw Error("loss: regression targets must be floating point");
    return at::mse_loss(logits.squeeze(-1).to(at::kFloat), labels.to(at::kFloat));
  }
  if (labels.scalar_type() != at::kLong) throw Error("loss: class labels must be int64");
  detail::check_value_range(labels, "loss: labels", head.num_labels);
  return at::cross_entropy_loss(logits.to(at::kFloat), labels);
}

}  // namespace adaptertune
