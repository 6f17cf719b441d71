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

  /// The newest complete checkpoint's directory, if any.
  std::optional<std::string> latest() const;

  /// Reads only the TrainingState of the checkpoint in `directory` (to check it before loading).
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
