#pragma once
/// @file task_sampler.h
/// Which task each batch of a multi-task run comes from.

#include <cstdint>
#include <vector>

namespace adaptertune {

/// Interleaves the batches of several tasks, deterministically, in rounds. One round has as many
/// batches as one pass over every task's data (the sum of `batches_per_epoch`); task i's share of
/// a round is proportional to `batches_per_epoch[i]^(1/temperature)`, at least one batch, and the
/// round's batches are shuffled so that every task's batches spread over the whole round.
///
/// - `temperature` 1: proportional sampling. Each task makes exactly one pass over its data per
///   round, so N rounds give every task the batches of N single-task epochs.
/// - `temperature` above 1 flattens the shares towards uniform (small tasks are seen more often
///   and cycle through their data several times per round; large tasks less than once);
///   below 1 sharpens them towards the largest task.
///
/// The order of round r depends only on (seed, r), so that a resumed run continues it, and
/// drawn_before() tells how far each task's data has been read at any position.
class TaskSampler {
 public:
  /// Throws Error when there is no task, a task has no batch, or the temperature is not a
  /// positive finite number.
  TaskSampler(std::vector<int64_t> batches_per_epoch, double temperature, uint64_t seed);

  /// Batches in one round: the sum of the tasks' batches per epoch.
  int64_t batches_per_round() const { return batches_per_round_; }
  /// Task i's batches in each round.
  const std::vector<int64_t>& shares() const { return shares_; }
  /// The task of every batch of round `round`, in order.
  std::vector<size_t> round_order(int64_t round) const;
  /// How many batches of each task come before batch `batch` of round `round`: where each
  /// task's own data order stands there.
  std::vector<int64_t> drawn_before(int64_t round, int64_t batch) const;

 private:
  std::vector<int64_t> batches_per_epoch_;
  std::vector<int64_t> shares_;
  int64_t batches_per_round_ = 0;
  uint64_t seed_;
};

}  // namespace adaptertune
