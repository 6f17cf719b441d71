#include "adaptertune/tasks/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "tasks/class_id.h"

namespace adaptertune {
namespace {

template <typename T>
void check_sizes(const std::vector<T>& a, const std::vector<T>& b, const char* metric) {
  if (a.size() != b.size() || a.empty()) {
    throw Error(std::string(metric) + ": need two non-empty sequences of equal length, got " +
                std::to_string(a.size()) + " and " + std::to_string(b.size()));
  }
}

std::vector<double> average_ranks(const std::vector<double>& values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    const double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

std::vector<int64_t> to_ids(const std::vector<double>& values, const TaskDescription& task) {
  std::vector<int64_t> ids;
  ids.reserve(values.size());
  for (double v : values) {
    const std::optional<int64_t> id = detail::class_id(v, task.labels.size());
    if (!id) throw Error(task.name + " metrics: " + format_number(v) + " is not a class id");
    ids.push_back(*id);
  }
  return ids;
}

}  // namespace

double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& gold) {
  check_sizes(predictions, gold, "accuracy");
  size_t correct = 0;
  for (size_t i = 0; i < gold.size(); ++i) correct += predictions[i] == gold[i];
  return static_cast<double>(correct) / static_cast<double>(gold.size());
}

double f1_score(const std::vector<int64_t>& predictions, const std::vector<int64_t>& gold,
                int64_t positive) {
  check_sizes(predictions, gold, "f1");
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    const bool p = predictions[i] == positive, g = gold[i] == positive;
    tp += p && g;
    fp += p && !g;
    fn += !p && g;
  }
  return tp == 0 ? 0.0 : 2 * tp / (2 * tp + fp + fn);
}

double matthews_corrcoef(const std::vector<int64_t>& predictions,
                         const std::vector<int64_t>& gold) {
  check_sizes(predictions, gold, "mcc");
  const int64_t classes = 1 + std::max(*std::max_element(predictions.begin(), predictions.end()),
                                       *std::max_element(gold.begin(), gold.end()));
  std::vector<double> t(static_cast<size_t>(classes)), p(static_cast<size_t>(classes));
  double correct = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    t[static_cast<size_t>(gold[i])] += 1;
    p[static_cast<size_t>(predictions[i])] += 1;
    correct += predictions[i] == gold[i];
  }
  const double n = static_cast<double>(gold.size());
  double pt = 0, pp = 0, tt = 0;
  for (int64_t k = 0; k < classes; ++k) {
    pt += p[static_cast<size_t>(k)] * t[static_cast<size_t>(k)];
    pp += p[static_cast<size_t>(k)] * p[static_cast<size_t>(k)];
    tt += t[static_cast<size_t>(k)] * t[static_cast<size_t>(k)];
  }
  const double denominator = std::sqrt((n * n - pp) * (n * n - tt));
  return denominator == 0 ? 0.0 : (correct * n - pt) / denominator;
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "pearson");
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return (sxx == 0 || syy == 0) ? 0.0 : sxy / std::sqrt(sxx * syy);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "spearman");
  return pearson(average_ranks(x), average_ranks(y));
}

double macro_f1_score(const std::vector<int64_t>& predictions, const std::vector<int64_t>& gold,
                      int64_t classes) {
  check_sizes(predictions, gold, "macro_f1");
  double sum = 0;
  for (int64_t c = 0; c < classes; ++c) sum += f1_score(predictions, gold, c);
  return sum / static_cast<double>(classes);
}

std::map<std::string, double> task_metrics(const TaskDescription& task,
                                           const std::vector<double>& predictions,
                                           const std::vector<double>& gold) {
  std::map<std::string, double> m;
  const std::vector<std::string> scored = task.scored_metrics();
  std::vector<int64_t> p, g;
  if (!task.regression()) {
    p = to_ids(predictions, task);
    g = to_ids(gold, task);
    m["accuracy"] = accuracy(p, g);
  }
  double sum = 0;
  for (const std::string& metric : scored) {
    double value = 0;
    if (metric == "accuracy") {
      value = m.at("accuracy");
    } else if (metric == "f1") {
      value = f1_score(p, g, 1);
    } else if (metric == "macro_f1") {
      value = macro_f1_score(p, g, static_cast<int64_t>(task.labels.size()));
    } else if (metric == "mcc") {
      value = matthews_corrcoef(p, g);
    } else if (metric == "pearson") {
      value = pearson(predictions, gold);
    } else if (metric == "spearmanr") {
      value = spearman(predictions, gold);
    } else {
      throw Error("task " + task.name + ": unknown metric \"" + metric + "\"");
    }
    m[metric] = value;
    sum += value;
  }
  m["combined"] = sum / static_cast<double>(scored.size());
  return m;
}

}  // namespace adaptertune
