#pragma once
/// @file task_routing.h
/// Which examples of a batch run which task: how one forward pass serves several tasks.

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace adaptertune {

/// Adapters applied one after another at every adapter site (AdapterHub's `Stack`): with
/// `Stack{"lang", "sst2"}`, sst2's adapter takes what lang's gives (its output with its skip
/// connection) as the sublayer's output, and the last adapter's placement decides the residual
/// add and LayerNorm that follow. The parts of a task other than its adapter (its LayerNorm
/// copies, pooler and head) are the last adapter's. A site where an adapter has none (a
/// Pfeiffer adapter after attention, a layer it leaves out) skips it. One adapter is the task
/// alone. A fusion is a step like an adapter, by its name (`Fuse(a, b)` is the fusion "a,b",
/// BertModelImpl::add_fusion()): `Stack{"lang", "a,b"}` fuses a and b on lang's output.
struct Stack {
  std::vector<std::string> adapters;
  Stack(std::string adapter) : adapters{std::move(adapter)} {}  // NOLINT: a task is a Stack
  Stack(const char* adapter) : adapters{adapter} {}             // NOLINT
  Stack(std::initializer_list<std::string> list) : adapters(list) {}
  explicit Stack(std::vector<std::string> list) : adapters(std::move(list)) {}
  /// The Stack of `adapter` on top of `below` (bottom first): `below...`, then `adapter`. What a
  /// task trained on other adapters runs in training, in its pack and in prediction.
  static Stack on_top_of(const std::vector<std::string>& below, const std::string& adapter);
  /// "Stack(lang, sst2)", "Fuse(a, b)", or the name of a single adapter.
  std::string describe() const;
  /// Throws Error when the Stack is empty or names an adapter twice.
  void check() const;
};

/// Splits a batch into groups of examples that run the same task (or none: the plain base), so
/// that each layer applies the shared computation once to the whole batch and the task-specific
/// parts (adapter, LayerNorm copies, pooler, head) once per group, on that group's rows only.
/// A routing is immutable once built, so one may be shared by threads.
class TaskRouting {
 public:
  /// One group: a task (std::nullopt: no task) and the batch rows that run it.
  struct Group {
    /// The task whose parts (LayerNorm copies, pooler, head) the group runs: the last adapter
    /// of `stack`.
    std::optional<std::string> task;
    /// The adapters the group runs at each adapter site, in order (empty: none, the plain base).
    std::vector<std::string> stack;
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
  /// Every example runs `stack` (AdapterHub's `Stack` as the whole setup).
  static TaskRouting stack(const Stack& stack);
  /// Example `i` runs `tasks[i]`; groups appear in the order their task first appears. Index
  /// tensors are made on `device`, where the batch will be. Throws Error for no examples.
  static TaskRouting per_example(const std::vector<std::optional<std::string>>& tasks,
                                 c10::Device device = c10::Device(c10::kCPU));
  /// Example `i` runs `stacks[i]` (an empty Stack: the plain base); examples with equal stacks
  /// form one group, in the order the stack first appears.
  static TaskRouting per_example_stacks(const std::vector<Stack>& stacks,
                                        c10::Device device = c10::Device(c10::kCPU));
  /// AdapterHub's `BatchSplit`: the first `sizes[0]` examples run `parts[0]`, the next
  /// `sizes[1]` run `parts[1]`, and so on (sizes > 0; their sum is the batch size).
  static TaskRouting batch_split(const std::vector<Stack>& parts, const std::vector<int64_t>& sizes,
                                 c10::Device device = c10::Device(c10::kCPU));
  /// AdapterHub's `Parallel`: every example of a batch of `batch_size` runs every branch, in one
  /// forward pass. The batch is replicated where the first branch-specific computation begins
  /// (the first task-owned LayerNorm or adapter), so that everything below is computed once;
  /// outputs have `branches.size() * batch_size` rows, branch by branch (group g holds rows
  /// g·batch_size to (g+1)·batch_size - 1).
  static TaskRouting parallel(const std::vector<Stack>& branches, int64_t batch_size);

  const std::vector<Group>& groups() const { return groups_; }
  /// The number of examples routed; 0 for whole_batch() (any batch size).
  int64_t batch_size() const { return batch_size_; }
  bool is_whole_batch() const {
    return replicas_ == 1 && groups_.size() == 1 && !groups_.front().rows.defined();
  }
  /// How many times the batch is replicated (Parallel: one per branch; else 1).
  int64_t replicas() const { return replicas_; }
  /// Rows of the routed outputs: batch_size() * replicas() (0 for whole_batch()).
  int64_t output_batch_size() const { return batch_size_ * replicas_; }

  /// Applies `fn(task, rows of x)` per group and returns the results in batch order (dimension 0
  /// of `x` is the batch). The results must agree in every dimension but the first.
  at::Tensor map(const at::Tensor& x,
                 const std::function<at::Tensor(const std::optional<std::string>&,
                                                const at::Tensor&)>& fn) const;
  /// As map(), with two batch-major inputs split alike.
  at::Tensor map(const at::Tensor& x, const at::Tensor& y,
                 const std::function<at::Tensor(const std::optional<std::string>&,
                                                const at::Tensor&, const at::Tensor&)>& fn) const;
  /// Whether `x` holds the batch before a parallel() routing replicated it: a layer with nothing
  /// of any group's own then computes once for all branches, on these rows.
  bool not_yet_replicated(const at::Tensor& x) const {
    return replicas_ > 1 && x.size(0) == batch_size_;
  }
  /// As map() with two inputs, telling `fn` the whole group (its stack of adapters).
  at::Tensor map_groups(const at::Tensor& x, const at::Tensor& y,
                        const std::function<at::Tensor(const Group&, const at::Tensor&,
                                                       const at::Tensor&)>& fn) const;
  /// The rows of `x` (batch-major) that group `g` runs. Under parallel(), `x` may still have
  /// the batch's rows (not yet replicated: every group runs them all) or the replicated rows.
  at::Tensor select(const at::Tensor& x, size_t g) const;

 private:
  // The results of `group_result(g)` for every group, put back in batch order (on the device of
  // `like`, a batch-major input).
  at::Tensor per_group(const std::function<at::Tensor(size_t)>& group_result,
                       const at::Tensor& like) const;

  // Groups for example rows that run `stacks[i]` (one group per distinct stack).
  static TaskRouting from_rows(const std::vector<Stack>& stacks, c10::Device device);

  std::vector<Group> groups_;
  int64_t batch_size_ = 0;
  int64_t replicas_ = 1;
  // The permutation that puts the concatenated groups back in batch order.
  at::Tensor restore_;
};

/// A composition written as text, as AdapterHub users write it in Python: `sst2`,
/// `Stack(lang, sst2)`, `Fuse(sst2, mrpc)`, `Parallel(sst2, Stack(lang, rte))`,
/// `BatchSplit(sst2, rte, batch_sizes=[2, 3])`. A Fuse becomes the fusion's name as a Stack step.
struct AdapterSetup {
  enum class Kind { kStack, kParallel, kBatchSplit };
  Kind kind = Kind::kStack;
  /// kStack: one; kParallel: the branches; kBatchSplit: the parts.
  std::vector<Stack> children;
  /// kBatchSplit: examples per part.
  std::vector<int64_t> batch_sizes;

  /// The routing that runs this setup on a batch of `batch_size` examples.
  TaskRouting routing(int64_t batch_size, c10::Device device = c10::Device(c10::kCPU)) const;
};

/// Parses a setup. Nesting follows what the routing can run: a Fuse holds two or more adapters, a
/// Stack holds adapters and Fuse blocks, and Parallel and BatchSplit hold adapters, Stacks and
/// Fuse blocks; anything else (a Parallel inside a Stack, a Stack inside a Fuse, …) is an Error
/// saying so, with where in `text` it is.
AdapterSetup parse_adapter_setup(const std::string& text);

}  // namespace adaptertune
