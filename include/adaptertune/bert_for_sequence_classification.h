#pragma once
/// @file bert_for_sequence_classification.h
/// BERT with a sequence-level classification or regression head.

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_model.h"
#include "adaptertune/head_config.h"

namespace adaptertune {

/// Hugging Face's `BertForSequenceClassification`: `bert` (BertModel), then dropout on the pooled
/// output and `classifier` (Linear hidden → num_labels). Parameter names therefore carry the
/// `bert.` prefix and the head is `classifier.{weight,bias}`, as in Python checkpoints.
class BertForSequenceClassificationImpl : public torch::nn::Module {
 public:
  BertForSequenceClassificationImpl(const BertConfig& config, const HeadConfig& head);

  /// Logits [batch, num_labels] (regression: [batch, 1]).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& token_type_ids = {});

  /// Cross-entropy over int64 class ids [batch], or mean squared error against float targets
  /// [batch] for regression. Throws Error on shape or label mismatch.
  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& labels) const;

  const HeadConfig& head_config() const { return head_; }

  BertModel bert{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear classifier{nullptr};

 private:
  HeadConfig head_;
};
TORCH_MODULE(BertForSequenceClassification);

}  // namespace adaptertune
