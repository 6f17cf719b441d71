#include "dynamic_batcher.h"

#include <exception>

namespace adaptertune::serve {

DynamicBatcher::DynamicBatcher(const Predictor& predictor, DynamicBatcherOptions options,
                               BatchObserver on_batch)
    : predictor_(predictor), options_(options), on_batch_(std::move(on_batch)) {
  worker_ = std::thread([this] { run(); });
}

DynamicBatcher::~DynamicBatcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

std::optional<std::future<std::vector<Prediction>>> DynamicBatcher::submit(
    std::vector<TaskRequest> requests) {
  const auto size = static_cast<int64_t>(requests.size());
  Job job{std::move(requests), {}, std::chrono::steady_clock::now()};
  std::future<std::vector<Prediction>> future = job.answer.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // An empty queue takes any request, so that one larger than the queue can still run.
    if (stopping_ || (queued_examples_ > 0 && queued_examples_ + size > options_.max_queue)) {
      return std::nullopt;
    }
    queued_examples_ += size;
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return future;
}

int64_t DynamicBatcher::queue_depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_examples_;
}

void DynamicBatcher::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    // Wait for company until the batch is full or the first request has waited long enough.
    const auto deadline = queue_.front().queued + options_.max_wait;
    wake_.wait_until(lock, deadline,
                     [this] { return stopping_ || queued_examples_ >= options_.max_batch; });
    std::vector<Job> jobs;
    int64_t examples = 0;
    while (!queue_.empty()) {
      const auto size = static_cast<int64_t>(queue_.front().requests.size());
      if (!jobs.empty() && examples + size > options_.max_batch) break;
      examples += size;
      queued_examples_ -= size;
      jobs.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    lock.unlock();
    answer(jobs);
    if (on_batch_) on_batch_(examples);
    lock.lock();
  }
}

void DynamicBatcher::answer(std::vector<Job>& jobs) {
  std::vector<TaskRequest> all;
  for (const Job& job : jobs) all.insert(all.end(), job.requests.begin(), job.requests.end());
  try {
    std::vector<Prediction> predictions = predictor_.predict(all);
    size_t at = 0;
    for (Job& job : jobs) {
      const auto begin = predictions.begin() + static_cast<std::ptrdiff_t>(at);
      at += job.requests.size();
      job.answer.set_value(
          std::vector<Prediction>(begin, predictions.begin() + static_cast<std::ptrdiff_t>(at)));
    }
  } catch (...) {
    if (jobs.size() == 1) {
      jobs.front().answer.set_exception(std::current_exception());
      return;
    }
    // Find the request at fault: each job on its own.
    for (Job& job : jobs) {
      try {
        job.answer.set_value(predictor_.predict(job.requests));
      } catch (...) {
        job.answer.set_exception(std::current_exception());
      }
    }
  }
}

}  // namespace adaptertune::serve
