#pragma once
/// @file checkpoint.h
/// Training checkpoints: enough state to resume a run exactly.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "adaptertune/training/optimizer.h"

namespace adaptertune {

/// The trainer's own position and bookkeeping, stored as JSON beside the tensors.
struct TrainingState {
  int64_t global_step = 0;
  int64_t epoch = 0;
  /// Batches of the current epoch already consumed (the data-order position).
  int64_t batch_in_epoch = 0;
  /// Seed of the data order, so that a resumed run shuffles the same way.
  uint64_t data_seed = 0;
  /// The learning-rate scheduler's state, as the scheduler writes it (opaque JSON).
  std::string scheduler_json = "{}";
  /// Anything else the trainer keeps (best metric so far, early-stopping counter, …), JSON.
  std::string extra_json = "{}";
  /// Dynamic loss scaling (TrainingEngineOptions::loss_scaling): the scale the next steps' losses
  /// are multiplied by (0: no scaling), the steps in a row since an overflow, and how many steps
  /// an overflow skipped. Saved as "loss_scaling" when the scale is not 0.
  double loss_scale = 0;
  int64_t loss_scale_growth_tracker = 0;
  int64_t skipped_steps = 0;

  /// The learning-rate schedule's step that the next update takes: the updates made so far, the
  /// steps loss scaling dropped left out (as Hugging Face's Trainer steps its scheduler only after
  /// an update).
  int64_t schedule_step() const { return global_step - skipped_steps; }
};

/// The shape of the data a run walks through, against which a checkpoint's position is checked
/// before a resume trusts it (CheckpointManager::check_position()).
struct DataShape {
  /// Batches in one epoch of the data (Batcher::batches_per_epoch()).
  int64_t batches_per_epoch = 0;
  /// Batches per optimizer step.
  int64_t gradient_accumulation = 1;
  /// The run's seed of the data order; a checkpoint made with another cannot continue the order.
  uint64_t data_seed = 0;
  /// True when some batches take no optimizer step (pretraining skips batches with nothing
  /// masked): the step count is then only bounded by the position, not equal to it.
  bool batches_may_skip_steps = false;
};

/// Checkpoints of one run under a root directory. Each checkpoint is a directory
/// `checkpoint-<step>` that is written completely under a temporary name and then renamed, and the
/// file `latest` (written atomically) names the newest complete one; older ones beyond `keep` are
/// removed afterwards. A crash or kill at any moment therefore leaves the previous checkpoint
/// loadable.
///
/// A checkpoint holds: the trainable parameters (`trainable.safetensors`), the optimizer's moments
/// (`optimizer.safetensors`), the RNG states of the CPU and of every CUDA device
/// (`rng.safetensors`), and `trainer_state.json` (TrainingState, optimizer steps and lr).
class CheckpointManager {
 public:
  /// `keep` (≥ 1) is how many complete checkpoints stay on disk.
  explicit CheckpointManager(std::string root, int keep = 2);

  /// Writes a checkpoint for `state.global_step` and returns its directory.
  std::string save(const torch::nn::Module& model, const AdamW& optimizer,
                   const TrainingState& state);

  /// The newest complete checkpoint's directory, if any. The `latest` file must name a
  /// `checkpoint-<step>` directory of this root (Error naming the file otherwise, so that a
  /// pointer never leads outside the run); a dangling pointer falls back to the newest complete
  /// checkpoint.
  std::optional<std::string> latest() const;

  /// Removes the temporaries (`.tmp-checkpoint-*`) that a process killed while writing a
  /// checkpoint left behind; those of a process still running are kept. save() does it too.
  void remove_stale_temporaries() const;

  /// Throws Error naming `directory`/trainer_state.json and the key when `state` is not a
  /// position that a run over data of `shape` can be at: the batch beyond the epoch's end, a step
  /// count that does not fit the epoch and batch, another data seed.
  static void check_position(const TrainingState& state, const std::string& directory,
                             const DataShape& shape);

  /// Reads only the TrainingState of the checkpoint in `directory` (to check it before loading).
  /// Types and ranges are checked (no negative step, epoch or batch; a finite learning rate),
  /// with errors naming the file and the key.
  static TrainingState read_state(const std::string& directory);

  /// Restores `model`'s trainable parameters, `optimizer`'s state and the RNGs from `directory`
  /// and returns the TrainingState. Throws Error (naming file and tensor) when the checkpoint does
  /// not fit the model or optimizer; nothing is changed then.
  static TrainingState load(const std::string& directory, torch::nn::Module& model,
                            AdamW& optimizer);

  const std::string& root() const { return root_; }

 private:
  std::string root_;
  int keep_;
};

}  // namespace adaptertune
