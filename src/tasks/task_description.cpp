#include "adaptertune/tasks/task_description.h"

#include <algorithm>
#include <set>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "text/unicode.h"

namespace adaptertune {
namespace {

bool is_classification_metric(const std::string& name) {
  return name == "accuracy" || name == "f1" || name == "macro_f1" || name == "mcc";
}

}  // namespace

const std::vector<std::string>& task_metric_names() {
  static const std::vector<std::string> names = {"accuracy", "f1",      "macro_f1",
                                                 "mcc",      "pearson", "spearmanr"};
  return names;
}

int64_t TaskDescription::label_id(const std::string& label) const {
  auto it = std::find(labels.begin(), labels.end(), label);
  if (it == labels.end()) {
    throw Error("unknown label \"" + label + "\" (expected " + joined(labels) + ")");
  }
  return it - labels.begin();
}

std::vector<std::string> TaskDescription::scored_metrics() const {
  if (!metrics.empty()) return metrics;
  if (regression()) return {"pearson", "spearmanr"};
  return {"accuracy"};
}

std::string TaskDescription::selection_metric() const {
  return main_metric.empty() ? "combined" : main_metric;
}

void TaskDescription::validate() const {
  if (name.empty()) throw Error("task: the name is empty");
  // The name and labels go into JSON (run.json, results, head_config.json): valid UTF-8 only,
  // and the messages do not repeat bytes that are not.
  detail::check_utf8(name, "task: the name");
  const std::string where = "task " + name + ": ";
  for (size_t i = 0; i < labels.size(); ++i) {
    detail::check_utf8(labels[i], where + "label " + std::to_string(i));
  }
  if (labels.size() == 1) {
    throw Error(where + "one label (\"" + labels[0] +
                "\"): a classification task needs at least two, a regression task none");
  }
  std::set<std::string> seen;
  for (const auto& label : labels) {
    if (label.empty()) throw Error(where + "a label is empty");
    if (!seen.insert(label).second) throw Error(where + "label \"" + label + "\" appears twice");
  }
  std::set<std::string> listed;
  for (const auto& metric : metrics) {
    const auto& known = task_metric_names();
    if (std::find(known.begin(), known.end(), metric) == known.end()) {
      throw Error(where + "unknown metric \"" + metric + "\" (expected one of " + joined(known) +
                  ")");
    }
    if (is_classification_metric(metric) == regression()) {
      throw Error(where + "metric " + metric + " does not fit a " +
                  (regression() ? "regression task (use pearson, spearmanr)"
                                : "classification task (use accuracy, f1, macro_f1, mcc)"));
    }
    if (metric == "f1" && labels.size() != 2) {
      throw Error(where + "metric f1 scores the second of two labels, but the task has " +
                  std::to_string(labels.size()) + " (use macro_f1)");
    }
    if (!listed.insert(metric).second) throw Error(where + "metric " + metric + " listed twice");
  }
  const std::vector<std::string> scored = scored_metrics();
  const std::string main = selection_metric();
  // What a run reports: the combined score, accuracy for any classification, and the metrics.
  std::vector<std::string> reported{"combined"};
  const auto is_scored = [&](const std::string& m) {
    return std::find(scored.begin(), scored.end(), m) != scored.end();
  };
  if (!regression() && !is_scored("accuracy")) reported.push_back("accuracy");
  reported.insert(reported.end(), scored.begin(), scored.end());
  if (std::find(reported.begin(), reported.end(), main) == reported.end()) {
    throw Error(where + "main metric \"" + main + "\" is not reported (expected one of " +
                joined(reported) + ")");
  }
}

}  // namespace adaptertune
