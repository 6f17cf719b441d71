#pragma once
// Dynamic batching for the server: requests from many connections wait in one queue and run
// together through one Predictor call, up to a batch size or a wait, whichever comes first.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "adaptertune/inference/predictor.h"

namespace adaptertune::serve {

struct DynamicBatcherOptions {
  /// Examples per Predictor call (a request larger than this runs alone).
  int64_t max_batch = 64;
  /// How long the first request of a batch waits for others.
  std::chrono::milliseconds max_wait{0};
  /// Examples that may wait; submit() refuses beyond this (the server answers 503).
  int64_t max_queue = 1024;
};

/// One worker thread runs the queue. Every answer goes to the request that asked: a batch whose
/// Predictor call fails (e.g. a task unloaded meanwhile) is rerun request by request, so only the
/// request at fault gets the error.
class DynamicBatcher {
 public:
  /// Called after each Predictor call with the number of examples it ran.
  using BatchObserver = std::function<void(int64_t examples)>;

  DynamicBatcher(const Predictor& predictor, DynamicBatcherOptions options,
                 BatchObserver on_batch = nullptr);
  /// Runs what is queued, then stops the worker.
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  /// Queues `requests`; std::nullopt when the queue is full.
  std::optional<std::future<std::vector<Prediction>>> submit(std::vector<TaskRequest> requests);
  /// Examples waiting (not yet running).
  int64_t queue_depth() const;

 private:
  struct Job {
    std::vector<TaskRequest> requests;
    std::promise<std::vector<Prediction>> answer;
    std::chrono::steady_clock::time_point queued;
  };
  void run();
  void answer(std::vector<Job>& jobs);

  const Predictor& predictor_;
  DynamicBatcherOptions options_;
  BatchObserver on_batch_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  int64_t queued_examples_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace adaptertune::serve
