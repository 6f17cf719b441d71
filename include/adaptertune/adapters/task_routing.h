#pragma once
/// @file task_routing.h
/// Which examples of a batch run which task: how one forward pass serves several tasks.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace adaptertune {

/// Splits a batch into groups of examples that run the same task (or none: the plain base), so
/// that each layer applies the shared computation once to the whole batch and the task-specific
/// parts (adapter, LayerNorm copies, pooler, head) once per group, on that group's rows only.
/// A routing is immutable once built, so one may be shared by threads.
class TaskRouting {
 public:
  /// One group: a task (std::nullopt: no task) and the batch rows that run it.
  struct Group {
    std::optional<std::string> task;
    /// Row indices into the batch (int64, ascending); undefined when the group is the whole
    /// batch.
    at::Tensor rows;
    /// The batch rows of the group, on the host (all of them, in order, for a per_example()
    /// routing with one group; empty for whole_batch(), which fits any batch size).
    std::vector<int64_t> row_list;
  };

  /// Every example runs `task` (std::nullopt: the plain base).
  static TaskRouting whole_batch(std::optional<std::string> task);
  /// The routing that runs the plain base for the whole batch (the layers' default).
  static const TaskRouting& base();
  /// Example `i` runs `tasks[i]`; groups appear in the order their task first appears. Index
  /// tensors are made on `device`, where the batch will be. Throws Error for no examples.
  static TaskRouting per_example(const std::vector<std::optional<std::string>>& tasks,
                                 c10::Device device = c10::Device(c10::kCPU));

  const std::vector<Group>& groups() const { return groups_; }
  /// The number of examples routed; 0 for whole_batch() (any batch size).
  int64_t batch_size() const { return batch_size_; }
  bool is_whole_batch() const { return groups_.size() == 1 && !groups_.front().rows.defined(); }

  /// Applies `fn(task, rows of x)` per group and returns the results in batch order (dimension 0
  /// of `x` is the batch). The results must agree in every dimension but the first.
  at::Tensor map(const at::Tensor& x,
                 const std::function<at::Tensor(const std::optional<std::string>&,
                                                const at::Tensor&)>& fn) const;
  /// As map(), with two batch-major inputs split alike.
  at::Tensor map(const at::Tensor& x, const at::Tensor& y,
                 const std::function<at::Tensor(const std::optional<std::string>&,
                                                const at::Tensor&, const at::Tensor&)>& fn) const;
  /// The rows of `x` (batch-major) that group `g` runs.
  at::Tensor select(const at::Tensor& x, size_t g) const;

 private:
  // The results of `group_result(g)` for every group, put back in batch order (on the device of
  // `like`, a batch-major input).
  at::Tensor per_group(const std::function<at::Tensor(size_t)>& group_result,
                       const at::Tensor& like) const;

  std::vector<Group> groups_;
  int64_t batch_size_ = 0;
  // The permutation that puts the concatenated groups back in batch order.
  at::Tensor restore_;
};

}  // namespace adaptertune
