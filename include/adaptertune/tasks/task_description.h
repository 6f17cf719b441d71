#pragma once
/// @file task_description.h
/// What a sequence-level task is: its labels (or regression), whether it reads text pairs, and
/// how it is scored. The Trainer, evaluate() and the metrics take this description; GLUE
/// (glue.h) is one provider of such descriptions, a user's own data set (text_dataset.h) another.

#include <cstdint>
#include <string>
#include <vector>

namespace adaptertune {

/// A text-classification or regression task.
struct TaskDescription {
  /// The task's name (errors, logs, results; the CLI names the task's adapter after it).
  std::string name;
  /// Label strings, index = class id; empty for regression.
  std::vector<std::string> labels;
  /// Whether an example is a pair of texts (sentence-pair tasks) or one text.
  bool sentence_pair = false;
  /// The metrics the task is scored by, from task_metric_names(): "accuracy", "f1" (binary: of
  /// the second label, e.g. "1"), "macro_f1", "mcc" (classification), "pearson", "spearmanr"
  /// (regression). task_metrics() reports these, "accuracy" for every classification task, and
  /// "combined", their mean. Empty: default_metrics().
  std::vector<std::string> metrics;
  /// The metric the best checkpoint is chosen by: one of `metrics`, "accuracy" (classification)
  /// or "combined". Empty: "combined".
  std::string main_metric;

  bool regression() const { return labels.empty(); }
  /// The class id of `label`; Error `unknown label "x" (expected a, b)` when it is none of
  /// `labels`.
  int64_t label_id(const std::string& label) const;
  /// `metrics`, or the defaults of the problem type when empty: accuracy (classification),
  /// pearson and spearmanr (regression).
  std::vector<std::string> scored_metrics() const;
  /// `main_metric`, or "combined" when empty.
  std::string selection_metric() const;
  /// Throws Error naming the task and what is wrong: no name, a single label, a repeated or
  /// empty label, an unknown metric or one that does not fit the problem type ("f1" needs two
  /// labels), a main metric that is not reported.
  void validate() const;
};

/// Every metric name a TaskDescription may list, classification's first.
const std::vector<std::string>& task_metric_names();

}  // namespace adaptertune
