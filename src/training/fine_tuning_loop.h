#pragma once
// The loop both fine-tuning trainers run (the Trainer over its tasks' batches, the
// QuestionAnsweringTrainer over SQuAD's windows): epochs of batches from where a resume left
// off, gradient accumulation, a group's all-reduce, optimizer steps, logging, evaluation,
// checkpoints, early stopping and Ctrl-C. A trainer says only how a batch trains and what it adds
// to a log line. (Masked-LM pretraining runs steps of packed sequences with neither evaluation on
// a dev set nor early stopping: its loop is its own, in pretraining.cpp.)

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>

#include "adaptertune/training/trainer.h"

namespace adaptertune {
class BertModelImpl;
class ProcessGroup;
class TrainingEngine;
}  // namespace adaptertune

namespace adaptertune::detail {

class Progress;

/// What a trainer does inside run_fine_tuning_loop().
struct FineTuningSteps {
  /// Starts `epoch` (its data order); returns how many batches it has. A resumed run's first
  /// epoch then starts at TrainingState::batch_in_epoch.
  std::function<int64_t(int64_t epoch)> begin_epoch;
  /// Trains batch `batch` of `epoch`: this process's share of it (all of it alone), forward and
  /// TrainingEngine::backward() weighted by the share, adding each loss's share of the global
  /// batch's mean to `step_loss` (one entry per loss the trainer reports). Returns the global
  /// batch's rows.
  std::function<int64_t(int64_t epoch, int64_t batch, std::vector<double>& step_loss)> train_batch;
  /// Evaluates on dev (after a step every TrainerOptions::eval_every, and at an epoch's end);
  /// true when early stopping ends the run. In a group, every process returns rank 0's decision.
  std::function<bool(int64_t epoch)> evaluate;
  /// Writes a checkpoint (on rank 0; the others return).
  std::function<void()> save_checkpoint;
  /// Optional: after each optimizer step, with its losses (in a group, every process's summed).
  std::function<void(const std::vector<double>& step_loss)> stepped;
  /// Given each logged step's "train" event (step, epoch, loss, lr, examples/s, fp16's loss
  /// scale) to add its own keys to and write to metrics.jsonl (rank 0).
  std::function<void(nlohmann::ordered_json& event)> log;
};

/// What a batch of `task` (an adapter, a fusion, or none: the plain base) minimises: `loss`, plus
/// AdapterFusion's pull of its value projections towards the identity when `task` is a fusion
/// trained with it (FusionConfig::regularization), added to each batch's loss, so that it weighs
/// once per optimizer step (TrainingEngine::backward() weights each batch by its share).
at::Tensor training_objective(const BertModelImpl& bert, const std::optional<std::string>& task,
                              const at::Tensor& loss);

/// Trains from the engine's state (step 0, or where a resume put it) to `total_steps` steps or
/// `epochs` epochs, whichever comes first, with `losses` losses a step (one per task): after each
/// optimizer step it records the position in the state, calls TrainerOptions::on_step, updates
/// `progress` and logs every `log_every` steps; evaluates and checkpoints every `eval_every`
/// steps and at each epoch's end; stops early on the evaluation's word, and on Ctrl-C
/// (stop_requested(), cleared first; in a group, every process stops at the step after any was
/// asked) with a checkpoint. `result` gets steps, skipped_steps, early_stopped and interrupted.
void run_fine_tuning_loop(TrainingEngine& engine, const TrainerOptions& options,
                          ProcessGroup* group, int64_t epochs, int64_t total_steps, size_t losses,
                          const FineTuningSteps& steps, Progress& progress, TrainResult& result);

}  // namespace adaptertune::detail
