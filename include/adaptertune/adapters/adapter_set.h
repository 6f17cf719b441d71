#pragma once
/// @file adapter_set.h
/// The tasks added to one base, what each owns, and which one is active.

#include <optional>
#include <string>
#include <vector>

#include "adaptertune/adapter_config.h"
#include "adaptertune/fusion_config.h"

namespace adaptertune {

/// What a task (a named adapter, or a fusion of adapters) owns beside its bottleneck adapters.
struct TaskEntry {
  std::string name;
  /// The adapter's config. For a fusion, that of its last fused adapter (whose placement ends
  /// each sublayer), with leave_out the layers where none of the fused adapters is.
  AdapterConfig adapter;
  /// Set for a fusion (AdapterFusion): the task is the fusion layers over `fused`, named
  /// fusion_name(fused), and has no adapter of its own; the fused adapters are other tasks.
  std::optional<FusionConfig> fusion;
  std::vector<std::string> fused;
  /// The task has its own copy of the LayerNorms of every layer its adapter is in (the
  /// embeddings' one with layer 0), trained with it; otherwise it runs the base's. Layers the
  /// adapter leaves out (AdapterConfig::leave_out) always run the base's.
  bool layer_norms = false;
  /// The task has its own copy of the pooler; otherwise it runs the base's.
  bool pooler = false;

  bool is_fusion() const { return fusion.has_value(); }
};

/// The one record of the tasks on a base: their names in the order they were added, what each
/// owns, and the active one (the task forward() runs when it is not told otherwise). The tensors
/// live in the layers (adapters under `adapters.<name>`, copies under `tasks.<name>`);
/// BertModel keeps both in step.
class AdapterSet {
 public:
  /// Throws Error if `entry.name` is empty, contains '.', or is taken, if an adapter's name
  /// contains ',' (fusions are named by their adapters joined by ','), or if a fusion's adapters
  /// are not adapters of the set.
  void add(TaskEntry entry);
  /// Throws Error if there is no such task or a fusion uses it; deactivates it first if active.
  void remove(const std::string& name);
  bool contains(const std::string& name) const;
  /// Throws Error naming the tasks there are if there is no such task.
  const TaskEntry& at(const std::string& name) const;
  TaskEntry& at(const std::string& name);
  std::vector<std::string> names() const;
  size_t size() const { return entries_.size(); }

  /// std::nullopt: the plain base. Throws Error if there is no such task.
  void set_active(const std::optional<std::string>& name);
  /// Makes the last of `adapters` the active task, with the others stacked below it in this
  /// order (a Stack: see TaskRouting). Throws Error for an unknown or repeated name or none.
  void set_active_stack(const std::vector<std::string>& adapters);
  const std::optional<std::string>& active() const { return active_; }
  /// The active task's adapter and those stacked below it, bottom first (empty: the base).
  std::vector<std::string> active_stack() const;

  /// Throws Error naming `task` and the tasks there are unless it is std::nullopt or a task.
  void check_known(const std::optional<std::string>& task) const;

 private:
  std::vector<TaskEntry> entries_;
  std::optional<std::string> active_;
  // Adapters stacked below the active one, bottom first.
  std::vector<std::string> below_;
};

}  // namespace adaptertune
