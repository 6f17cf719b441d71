#include "adaptertune/tasks/task_sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "adaptertune/error.h"
#include "adaptertune/format.h"

namespace adaptertune {

TaskSampler::TaskSampler(std::vector<int64_t> batches_per_epoch, double temperature, uint64_t seed)
    : batches_per_epoch_(std::move(batches_per_epoch)), seed_(seed) {
  if (batches_per_epoch_.empty()) throw Error("TaskSampler: no task to sample");
  for (size_t i = 0; i < batches_per_epoch_.size(); ++i) {
    if (batches_per_epoch_[i] < 1) {
      throw Error("TaskSampler: task " + std::to_string(i) + " has " +
                  std::to_string(batches_per_epoch_[i]) + " batches per epoch, expected >= 1");
    }
  }
  if (!std::isfinite(temperature) || temperature <= 0) {
    throw Error("TaskSampler: temperature must be a positive finite number, got " +
                format_number(temperature));
  }
  batches_per_round_ =
      std::accumulate(batches_per_epoch_.begin(), batches_per_epoch_.end(), int64_t{0});
  const size_t tasks = batches_per_epoch_.size();
  // Shares by largest remainder, so that they add up to the round exactly; with temperature 1
  // the quotas are whole numbers and each share is its task's batches per epoch.
  std::vector<double> weights(tasks);
  for (size_t i = 0; i < tasks; ++i) {
    weights[i] = std::pow(static_cast<double>(batches_per_epoch_[i]), 1.0 / temperature);
  }
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  shares_.assign(tasks, 0);
  std::vector<std::pair<double, size_t>> remainders;
  int64_t given = 0;
  for (size_t i = 0; i < tasks; ++i) {
    const double quota = static_cast<double>(batches_per_round_) * weights[i] / total;
    shares_[i] = static_cast<int64_t>(std::floor(quota + 1e-9));
    given += shares_[i];
    remainders.emplace_back(-(quota - static_cast<double>(shares_[i])), i);
  }
  std::sort(remainders.begin(), remainders.end());
  for (size_t k = 0; given < batches_per_round_; ++k, ++given) ++shares_[remainders[k].second];
  // Every task trains: a share rounded to nothing takes a batch from the largest one.
  for (size_t i = 0; i < tasks; ++i) {
    if (shares_[i] == 0) {
      ++shares_[i];
      --*std::max_element(shares_.begin(), shares_.end());
    }
  }
}

std::vector<size_t> TaskSampler::round_order(int64_t round) const {
  std::vector<size_t> order;
  order.reserve(static_cast<size_t>(batches_per_round_));
  for (size_t i = 0; i < shares_.size(); ++i) order.insert(order.end(), shares_[i], i);
  if (shares_.size() > 1) {
    // Another stream than the tasks' Batchers (seed * 1000003 + epoch), so that the task order
    // and the data orders do not repeat each other's draws.
    std::mt19937_64 rng(seed_ * 1000003ULL + 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(round));
    std::shuffle(order.begin(), order.end(), rng);
  }
  return order;
}

std::vector<int64_t> TaskSampler::drawn_before(int64_t round, int64_t batch) const {
  if (round < 0 || batch < 0 || batch > batches_per_round_) {
    throw Error("TaskSampler: position (round " + std::to_string(round) + ", batch " +
                std::to_string(batch) + ") is outside the rounds of " +
                std::to_string(batches_per_round_) + " batches");
  }
  std::vector<int64_t> drawn(shares_.size());
  for (size_t i = 0; i < shares_.size(); ++i) drawn[i] = shares_[i] * round;
  if (batch > 0) {
    const std::vector<size_t> order = round_order(round);
    for (int64_t b = 0; b < batch; ++b) ++drawn[order[static_cast<size_t>(b)]];
  }
  return drawn;
}

}  // namespace adaptertune
