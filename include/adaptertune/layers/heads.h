#pragma once
/// @file heads.h
/// Task heads on top of the BERT encoder.

#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_model.h"
#include "adaptertune/layers/activation.h"

namespace adaptertune {

/// What a sequence-level head predicts.
enum class ProblemType {
  /// `num_labels` classes, softmax cross-entropy.
  kSingleLabelClassification,
  /// One real value, mean squared error (STS-B).
  kRegression,
};

/// Configuration of a sequence-level head, with Hugging Face's names (`num_labels`,
/// `problem_type` = "single_label_classification" | "regression", `id2label`).
struct HeadConfig {
  int64_t num_labels = 2;
  ProblemType problem_type = ProblemType::kSingleLabelClassification;
  /// Optional label names, index = class id.
  std::vector<std::string> id2label;
  /// Dropout before the classifier; negative means the encoder's hidden_dropout_prob.
  double classifier_dropout = -1.0;

  /// A regression head (num_labels = 1).
  static HeadConfig regression();
  /// A classification head over `labels` (num_labels = labels.size()).
  static HeadConfig classification(std::vector<std::string> labels);
  void validate() const;
  static HeadConfig from_json_string(const std::string& json,
                                     const std::string& source = "<string>");
  /// The head described by a larger document, a Hugging Face `config.json` or an AdapterHub
  /// `head_config.json`: its `num_labels`, `id2label`, `problem_type` and `classifier_dropout`
  /// keys (others are ignored). As in Hugging Face, one label without a problem type means
  /// regression; no keys at all mean two classes.
  static HeadConfig from_model_config(const std::string& json, const std::string& source);
  std::string to_json_string() const;
  bool operator==(const HeadConfig& other) const;
};

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

/// Hugging Face's `BertForMaskedLM`: `bert` (without pooler) and the prediction head
/// `cls.predictions` (transform: dense + activation + LayerNorm; decoder tied to the word
/// embeddings, plus a bias), with Hugging Face's parameter names.
class BertForMaskedLMImpl : public torch::nn::Module {
 public:
  explicit BertForMaskedLMImpl(const BertConfig& config);

  /// Vocabulary logits at the positions where `labels` is not -100, and those labels:
  /// ([masked, vocab], [masked]). Computing only the masked positions keeps the vocabulary
  /// projection cheap.
  std::pair<torch::Tensor, torch::Tensor> masked_logits(const torch::Tensor& input_ids,
                                                        const torch::Tensor& labels,
                                                        const torch::Tensor& attention_mask = {});
  /// Cross-entropy of the masked positions.
  torch::Tensor loss(const torch::Tensor& input_ids, const torch::Tensor& labels,
                     const torch::Tensor& attention_mask = {});

  BertModel bert{nullptr};
  torch::nn::Linear transform_dense{nullptr};
  torch::nn::LayerNorm transform_norm{nullptr};
  torch::Tensor decoder_bias;

 private:
  Activation activation_;
};
TORCH_MODULE(BertForMaskedLM);

}  // namespace adaptertune
