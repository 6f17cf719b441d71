#pragma once
/// @file head_config.h
/// What a sequence-level task head predicts: its labels, or regression.

#include <cstdint>
#include <string>
#include <vector>

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
  /// The name of class `index`: `id2label[index]`, else Hugging Face's default "LABEL_<index>".
  std::string label_name(int64_t index) const;
  bool operator==(const HeadConfig& other) const;
};

}  // namespace adaptertune
