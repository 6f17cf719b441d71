#pragma once
// The server's counters in Prometheus' text format: requests and errors by task and status,
// request latency and batch size histograms, queue depth.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace adaptertune::serve {

class Metrics {
 public:
  /// One example answered (or refused) with HTTP `status`; `task` is "" for the plain base and
  /// for requests refused before their task was known.
  void count_example(const std::string& task, int status);
  /// One HTTP request of `endpoint` finished with `status` after `seconds`.
  void observe_request(const std::string& endpoint, int status, double seconds);
  /// One Predictor call ran `examples`.
  void observe_batch(int64_t examples);
  /// The exposition text; `queue_depth` is read by the caller at scrape time.
  std::string render(int64_t queue_depth, int64_t tasks_loaded) const;

 private:
  struct Histogram {
    std::vector<double> bounds;
    std::vector<int64_t> counts;  // per bound, not cumulative; one more for +Inf
    double sum = 0;
    int64_t count = 0;
    void observe(double value);
  };

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> examples_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  Histogram latency_{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, {}, 0, 0};
  Histogram batch_{{1, 2, 4, 8, 16, 32, 64, 128, 256}, {}, 0, 0};
};

}  // namespace adaptertune::serve
