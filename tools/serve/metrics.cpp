#include "metrics.h"

#include <algorithm>
#include <sstream>

namespace adaptertune::serve {
namespace {

// Label values escaped as the exposition format asks.
std::string escaped(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

void Metrics::Histogram::observe(double value) {
  if (counts.empty()) counts.assign(bounds.size() + 1, 0);
  const auto bucket = std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin();
  ++counts[static_cast<size_t>(bucket)];
  sum += value;
  ++count;
}

void Metrics::count_example(const std::string& task, int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++examples_[{task, status}];
}

void Metrics::observe_request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, status}];
  if (endpoint == "/v1/predict") latency_.observe(seconds);
}

void Metrics::observe_batch(int64_t examples) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_.observe(static_cast<double>(examples));
}

std::string Metrics::render(int64_t queue_depth, int64_t tasks_loaded) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream out;
  out << "# HELP adaptertune_requests_total HTTP requests by endpoint and status.\n"
      << "# TYPE adaptertune_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    out << "adaptertune_requests_total{endpoint=\"" << escaped(key.first) << "\",status=\""
        << key.second << "\"} " << count << "\n";
  }
  out << "# HELP adaptertune_examples_total Examples asked of /v1/predict, by task and status "
         "(task \"\": the plain base, or refused before the task was known).\n"
      << "# TYPE adaptertune_examples_total counter\n";
  for (const auto& [key, count] : examples_) {
    out << "adaptertune_examples_total{task=\"" << escaped(key.first) << "\",status=\""
        << key.second << "\"} " << count << "\n";
  }
  out << "# HELP adaptertune_errors_total Examples answered with an error status, by task.\n"
      << "# TYPE adaptertune_errors_total counter\n";
  std::map<std::string, int64_t> errors;
  for (const auto& [key, count] : examples_) {
    if (key.second >= 400) errors[key.first] += count;
  }
  for (const auto& [task, count] : errors) {
    out << "adaptertune_errors_total{task=\"" << escaped(task) << "\"} " << count << "\n";
  }
  auto histogram = [&](const char* name, const char* help, const Histogram& h) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
    int64_t cumulative = 0;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      cumulative += h.counts.empty() ? 0 : h.counts[i];
      out << name << "_bucket{le=\"" << number(h.bounds[i]) << "\"} " << cumulative << "\n";
    }
    out << name << "_bucket{le=\"+Inf\"} " << h.count << "\n"
        << name << "_sum " << number(h.sum) << "\n"
        << name << "_count " << h.count << "\n";
  };
  histogram("adaptertune_request_seconds", "Latency of /v1/predict requests.", latency_);
  histogram("adaptertune_batch_examples", "Examples per forward batch (dynamic batching).", batch_);
  out << "# HELP adaptertune_queue_examples Examples waiting to be batched.\n"
      << "# TYPE adaptertune_queue_examples gauge\n"
      << "adaptertune_queue_examples " << queue_depth << "\n"
      << "# HELP adaptertune_tasks Tasks loaded.\n"
      << "# TYPE adaptertune_tasks gauge\n"
      << "adaptertune_tasks " << tasks_loaded << "\n";
  return out.str();
}

}  // namespace adaptertune::serve
