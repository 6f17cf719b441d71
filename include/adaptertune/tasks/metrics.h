#pragma once
/// @file metrics.h
/// Classification and regression metrics, as scikit-learn and SciPy compute them.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "adaptertune/tasks/task_description.h"

namespace adaptertune {

/// Share of equal entries. Inputs must have the same, non-zero length (Error otherwise).
double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& gold);
/// F1 of class `positive` (MRPC, QQP use 1). 0 when there are no true positives.
double f1_score(const std::vector<int64_t>& predictions, const std::vector<int64_t>& gold,
                int64_t positive = 1);
/// Matthews correlation coefficient, multi-class form (Gorodkin 2004; binary MCC for two
/// classes), as scikit-learn computes it; 0 when undefined.
double matthews_corrcoef(const std::vector<int64_t>& predictions, const std::vector<int64_t>& gold);
/// Pearson correlation; 0 when a side is constant.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
/// Spearman rank correlation with average ranks for ties.
double spearman(const std::vector<double>& x, const std::vector<double>& y);

/// Mean of the per-class F1 over `classes` classes (scikit-learn's average="macro"; a class
/// with no true positives counts 0).
double macro_f1_score(const std::vector<int64_t>& predictions, const std::vector<int64_t>& gold,
                      int64_t classes);

/// The metrics `task` is scored by (TaskDescription::scored_metrics()), "accuracy" for every
/// classification task, and "combined": the mean of the scored metrics, the single score GLUE's
/// leaderboard shows per task (CoLA: mcc; MRPC, QQP: mean of f1 and accuracy; STS-B: mean of
/// pearson and spearmanr; the rest: accuracy). `predictions`/`gold` are class ids as doubles, or
/// regression values; a class id out of the task's labels is an Error.
std::map<std::string, double> task_metrics(const TaskDescription& task,
                                           const std::vector<double>& predictions,
                                           const std::vector<double>& gold);

}  // namespace adaptertune
