#include "adaptertune/bert_for_sequence_classification.h"

#include <ATen/ATen.h>

#include "adaptertune/error.h"
#include "shape_check.h"

namespace adaptertune {

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(const BertConfig& config,
                                                                     const HeadConfig& head)
    : head_(head) {
  head_.validate();
  bert = register_module("bert", BertModel(config));
  const double p =
      head_.classifier_dropout >= 0 ? head_.classifier_dropout : config.hidden_dropout_prob;
  dropout = register_module("dropout", torch::nn::Dropout(p));
  classifier =
      register_module("classifier", torch::nn::Linear(config.hidden_size, head_.num_labels));
  init_bert_weights(*classifier, config.initializer_range);
}

torch::Tensor BertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask,
                                                         const torch::Tensor& token_type_ids) {
  return classifier(dropout(bert(input_ids, attention_mask, token_type_ids).pooler_output));
}

torch::Tensor BertForSequenceClassificationImpl::loss(const torch::Tensor& logits,
                                                      const torch::Tensor& labels) const {
  if (labels.dim() != 1 || labels.size(0) != logits.size(0)) {
    throw Error("loss: labels must have shape [" + std::to_string(logits.size(0)) + "], got " +
                detail::shape_string(labels));
  }
  if (head_.problem_type == ProblemType::kRegression) {
    if (!labels.is_floating_point()) throw Error("loss: regression targets must be floating point");
    return at::mse_loss(logits.squeeze(-1).to(at::kFloat), labels.to(at::kFloat));
  }
  if (labels.scalar_type() != at::kLong) throw Error("loss: class labels must be int64");
  if (labels.device().is_cpu() && labels.numel() > 0) {
    auto [min, max] = at::aminmax(labels);
    if (min.item<int64_t>() < 0 || max.item<int64_t>() >= head_.num_labels) {
      throw Error(
          "loss: label " +
          std::to_string(min.item<int64_t>() < 0 ? min.item<int64_t>() : max.item<int64_t>()) +
          " is outside [0, " + std::to_string(head_.num_labels) + ")");
    }
  }
  return at::cross_entropy_loss(logits.to(at::kFloat), labels);
}

}  // namespace adaptertune
