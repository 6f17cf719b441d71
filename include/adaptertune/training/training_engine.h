#pragma once
/// @file training_engine.h
/// The optimisation machinery that fine-tuning (Trainer) and pretraining (pretrain_mlm()) share:
/// AdamW over the trainable parameters, the learning-rate schedule, autocast, gradient
/// accumulation and clipping, and checkpoints whose data fingerprint a resume must match. Each
/// loop keeps only what is its own (batches and losses, evaluation, what it writes), so that a
/// rule such as the warmup's rounding or the clip value exists once.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <torch/nn/module.h>

#include "adaptertune/precision.h"
#include "adaptertune/training/checkpoint.h"
#include "adaptertune/training/optimizer.h"
#include "adaptertune/training/scheduler.h"

namespace adaptertune {

class FrozenLinearWeightsPrepacked;
class FrozenProjectionsPacked;

/// Whether a TrainingEngine scales the loss (TrainingEngineOptions::loss_scaling).
enum class LossScaling {
  /// Under fp16 only: its gradients underflow below 6e-8 and overflow above 65504, where bf16's
  /// and float32's range is float32's.
  kAuto,
  kOn,
  kOff,
};

/// How a TrainingEngine optimises.
struct TrainingEngineOptions {
  /// Peak learning rate, its schedule and warmup (a share of total_steps, rounded to the nearest
  /// step).
  double lr = 1e-4;
  ScheduleKind schedule = ScheduleKind::kLinear;
  double warmup_ratio = 0.0;
  int64_t total_steps = 1;
  /// When ≥ 0, the warmup in steps instead of warmup_ratio (a run whose total may grow keeps its
  /// warmup).
  int64_t warmup_steps = -1;
  /// ScheduleKind::kWarmupStableDecay: the steps of its final decay (0: 10 % of total_steps).
  int64_t decay_steps = 0;
  /// AdamW's decoupled weight decay (none on biases and LayerNorm weights).
  double weight_decay = 0.01;
  /// Clip the global gradient norm to this before each step; 0: no clipping.
  double max_grad_norm = 1.0;
  /// Batches whose gradients make one optimizer step (backward() scales by its inverse).
  int64_t gradient_accumulation = 1;
  c10::Device device = c10::Device(c10::kCPU);
  Precision precision = Precision::kFloat32;
  /// Where checkpoints go, and how many complete ones stay on disk.
  std::string checkpoint_dir;
  int keep_checkpoints = 1;
  /// The seed of the data order, recorded in checkpoints and checked on resume.
  uint64_t data_seed = 42;
  /// Under bf16/fp16, store the frozen Linear weights in that dtype for the engine's lifetime
  /// where that loses nothing (FrozenLinearWeightsInDtype): the same results without autocast's
  /// casts, and half their memory. Off: they stay float32 and are cast on every use.
  bool frozen_weights_in_compute_dtype = true;
  /// Under bf16 on the CPU, have the frozen bf16 weights' forward products read copies laid out
  /// for oneDNN's kernels (FrozenLinearWeightsPrepacked): about 1.07x a bert-base Houlsby step,
  /// for two more bytes per frozen weight value (a bert-base Houlsby step's peak 0.51 -> 0.58 of
  /// full fine-tuning's). Off: oneDNN lays the weights out inside every product. Float32 weights
  /// are not prepacked in training (PrepackedDtypes::kBFloat16): four bytes per value for a
  /// step level at bert-base's shape and 1.07x at the main job's (docs/benchmarks.md).
  bool prepack_frozen_weights = true;
  /// Dynamic loss scaling, as PyTorch's GradScaler does it: backward() multiplies the loss by a
  /// scale, so that small gradients survive fp16's range, and step() divides the gradients by it
  /// again. A step whose gradients hold an infinity or a NaN updates nothing and halves the scale;
  /// `loss_scale_growth_interval` steps in a row without one double it. The scale is a power of
  /// two, so scaling and unscaling round nothing: where nothing overflows, the weights are those
  /// of a run without it, bit for bit. The scale is kept in checkpoints.
  LossScaling loss_scaling = LossScaling::kAuto;
  /// The first scale: a power of two, at least 1 (GradScaler's default, 2^16).
  double initial_loss_scale = 65536.0;
  /// Steps without an overflow after which the scale doubles (GradScaler's default).
  int64_t loss_scale_growth_interval = 2000;

  /// Whether loss_scaling is on for this precision.
  bool scales_loss() const;
  /// Throws Error naming the first option out of its range.
  void validate() const;
};

/// AdamW, the schedule and checkpoints around one model's trainable parameters (those that
/// require grad when the engine is made: apply the freeze policy first).
///
/// Under bf16/fp16 the frozen Linear weights are stored in that dtype while the engine lives
/// (TrainingEngineOptions::frozen_weights_in_compute_dtype), and are float32 again, with their
/// original values, once it is gone: inside its lifetime, run the model under autocast(). The
/// frozen attention projections are packed into one block per layer while it lives
/// (FrozenProjectionsPacked), and the frozen bfloat16 weights' forward products read copies laid
/// out for oneDNN's kernels (FrozenLinearWeightsPrepacked).
///
/// A loop calls, per batch, backward() on its loss under autocast(), and after every
/// `gradient_accumulation` batches step(); it checkpoints with save_checkpoint() and continues a
/// run with resume(). TrainingEngine::state() is the position checkpoints record: the loop sets
/// its epoch and batch; step() counts the steps.
class TrainingEngine {
 public:
  /// Checks `options` (Error naming the option) and builds the optimizer over `model`'s
  /// trainable parameters. `model` must outlive the engine.
  TrainingEngine(torch::nn::Module& model, TrainingEngineOptions options);
  ~TrainingEngine();

  /// Autocast in the engine's precision on its device, for the forward pass and the loss.
  AutocastGuard autocast() const { return AutocastGuard(options_.device, options_.precision); }
  /// Backpropagates `loss` as `share` (0 to 1) of one batch of an optimizer step: scaled by
  /// share / gradient_accumulation, so that the step's gradient is the mean over its batches.
  void backward(const at::Tensor& loss, double share = 1.0);
  /// Ends an optimizer step: clips the gradient norm, sets the learning rate of the current step,
  /// steps AdamW, clears the gradients and counts the step. Returns the learning rate used. Under
  /// loss scaling the gradients are first divided by the scale; when one of them is not finite,
  /// the step updates nothing (AdamW's state included), halves the scale, counts one more
  /// TrainingState::skipped_steps and still counts the step, whose batches were used; the
  /// learning-rate schedule does not advance (TrainingState::schedule_step()). Error when
  /// the scale would fall below 1: the loss itself, or the forward pass, is not finite.
  double step();

  /// The newest checkpoint of checkpoint_dir, checked and loaded: its position must fit `shape`
  /// and its recorded data fingerprint must equal `fingerprint_json` (a JSON object; Error naming
  /// the first key that differs, and the file), and `check_extra` (when given) may refuse the
  /// loop's own bookkeeping (the saved TrainingState's extra_json, and the path of the file that
  /// holds it) by throwing.
  /// Only then are the parameters, AdamW's moments and the RNGs restored, so that a refused
  /// checkpoint leaves the model untouched. Returns the checkpoint's directory, or std::nullopt
  /// when there is none.
  std::optional<std::string> resume(
      const DataShape& shape, const std::string& fingerprint_json,
      const std::function<void(const TrainingState& saved, const std::string& path)>& check_extra =
          nullptr);
  /// As resume(), from the checkpoint in `directory` (a `checkpoint-<step>` directory of any run,
  /// e.g. to branch a learning-rate decay off a long run) instead of the newest of
  /// checkpoint_dir, which then receives this run's own checkpoints. Error naming `directory` when
  /// it holds no complete checkpoint.
  void resume_from(const std::string& directory, const DataShape& shape,
                   const std::string& fingerprint_json,
                   const std::function<void(const TrainingState& saved, const std::string& path)>&
                       check_extra = nullptr);
  /// Writes a checkpoint of the current state: the trainable parameters, AdamW's moments, the
  /// RNGs, the position, the learning-rate schedule (TrainingState::scheduler_json, as
  /// LrSchedule::to_json() writes it), and `extra_json` (the loop's own JSON object) with the data
  /// `fingerprint_json` under "data". Returns its directory.
  std::string save_checkpoint(const std::string& fingerprint_json,
                              const std::string& extra_json = "{}");

  /// The scale backward() multiplies the loss by; 0 without loss scaling.
  double loss_scale() const { return state_.loss_scale; }
  TrainingState& state() { return state_; }
  const TrainingState& state() const { return state_; }
  AdamW& optimizer() { return *optimizer_; }
  const LrSchedule& schedule() const { return schedule_; }
  const std::vector<at::Tensor>& trainable() const { return trainable_; }
  CheckpointManager& checkpoints() { return checkpoints_; }
  const TrainingEngineOptions& options() const { return options_; }

 private:
  torch::nn::Module& model_;
  TrainingEngineOptions options_;
  std::vector<at::Tensor> trainable_;
  std::unique_ptr<AdamW> optimizer_;
  LrSchedule schedule_;
  // Divides the gradients by the loss scale; false when one of them is not finite.
  bool unscale_gradients();

  CheckpointManager checkpoints_;
  TrainingState state_;
  // Last but one, so that the weights are float32 again before anything else goes.
  FrozenLinearWeightsInDtype frozen_weights_;
  // After the conversion above, which gives the weights new storage; unpacked before it undoes it.
  std::unique_ptr<FrozenProjectionsPacked> packed_projections_;
  // Last: covers the storages the two above leave the frozen weights in.
  std::unique_ptr<FrozenLinearWeightsPrepacked> prepacked_weights_;
};

}  // namespace adaptertune
