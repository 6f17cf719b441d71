#pragma once
/// @file metrics.h
/// GLUE's metrics.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "adaptertune/tasks/glue.h"

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

/// The metrics GLUE reports for `task`, plus "combined": the single score the leaderboard shows
/// per task (CoLA, AX: mcc; MRPC, QQP: mean of f1 and accuracy; STS-B: mean of pearson and
/// spearmanr; the rest: accuracy). `predictions`/`gold` are class ids as doubles, or scores.
std::map<std::string, double> glue_metrics(const GlueTaskInfo& task,
                                           const std::vector<double>& predictions,
                                           const std::vector<double>& gold);

}  // namespace adaptertune
