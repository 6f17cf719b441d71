#include "training/fine_tuning_loop.h"

#include <algorithm>
#include <optional>
#include <string>

#include "adaptertune/adapters/adapter_set.h"
#include "adaptertune/bert_model.h"
#include "adaptertune/fusion_config.h"
#include "adaptertune/training/interrupt.h"
#include "adaptertune/training/training_engine.h"
#include "training/data_parallel.h"
#include "training/run_files.h"

namespace adaptertune::detail {

at::Tensor training_objective(const BertModelImpl& bert, const std::optional<std::string>& task,
                              const at::Tensor& loss) {
  if (!task) return loss;
  const TaskEntry& entry = bert.tasks().at(*task);
  if (!entry.is_fusion() || !entry.fusion->regularization) return loss;
  const at::Tensor regularization = bert.fusion_regularization_loss(*task);
  return regularization.defined() ? loss + regularization : loss;
}

namespace {

using Json = nlohmann::ordered_json;

// Where an optimizer step lies in the run.
struct StepPosition {
  int64_t epoch = 0, epochs = 0;
  // The batch of the epoch just consumed (1-based) and the epoch's batches.
  int64_t batch = 0, batches = 0;
  int64_t total_steps = 0;
};

// After an optimizer step that took learning rate `lr`: records the data position in `state`,
// calls `options.on_step`, updates the progress display, and, when the step is one to log
// (`options.log_every`), returns its "train" event for metrics.jsonl.
std::optional<Json> report_step(const TrainerOptions& options, TrainingState& state,
                                const StepPosition& position, double lr, const LogWindow& window,
                                Progress& progress) {
  state.epoch = position.epoch;
  state.batch_in_epoch = position.batch;
  const WindowRate rate = window.rate();
  const double eta =
      rate.seconds_for(static_cast<double>((position.total_steps - state.global_step) *
                                           options.batch_size * options.gradient_accumulation));
  if (options.on_step) options.on_step(state.global_step);
  const bool log_now = state.global_step % options.log_every == 0;
  progress.update(position.epoch, position.epochs, position.batch, position.batches,
                  window.mean_loss(), lr, rate.examples_per_second, eta, log_now);
  if (!log_now) return std::nullopt;
  Json event = {{"event", "train"},
                {"step", state.global_step},
                {"epoch", position.epoch + 1},
                {"loss", window.mean_loss()},
                {"lr", lr},
                {"examples_per_s", rate.examples_per_second}};
  add_loss_scaling(event, state);
  return event;
}

// What the loop can do after a step or an epoch: evaluate on dev (true when early stopping then
// ends the run) and save a checkpoint.
struct RunActions {
  std::function<bool()> evaluate;
  std::function<void()> save_checkpoint;
};

// After an optimizer step and report_step(): ends at the run's last step (the epoch's end
// evaluates and checkpoints it); evaluates and checkpoints every `options.eval_every` steps; then
// checkpoints and ends when `stop()` says so (asked after the evaluation, so that a Ctrl-C during
// it counts at once). Returns true when the loop ends here, with `result` saying why
// (early_stopped, interrupted).
bool after_step(const TrainerOptions& options, const TrainingState& state, int64_t total_steps,
                const std::function<bool()>& stop, const RunActions& actions, Progress& progress,
                TrainResult& result) {
  if (state.global_step >= total_steps) return true;
  if (options.eval_every > 0 && state.global_step % options.eval_every == 0) {
    if (actions.evaluate()) {
      result.early_stopped = true;
      return true;
    }
    actions.save_checkpoint();
  }
  if (!stop()) return false;
  actions.save_checkpoint();
  result.interrupted = true;
  progress.message("train: interrupted; checkpoint saved at step " +
                   std::to_string(state.global_step) + " (continue with --resume)");
  return true;
}

// At an epoch's end, or where a step ended the run, unless it was interrupted: evaluates unless
// this step was just evaluated or early stopping ended the run; moves `state` to the next epoch
// when this one's `batches` are consumed (a run stopped inside the epoch records where, so that a
// resume with more steps continues the epoch there); saves a checkpoint. Returns true when early
// stopping ends the run.
bool end_epoch(TrainingState& state, int64_t epoch, int64_t batches, int64_t last_eval_step,
               const RunActions& actions, TrainResult& result) {
  if (!result.early_stopped && last_eval_step != state.global_step && actions.evaluate()) {
    result.early_stopped = true;
  }
  if (state.batch_in_epoch >= batches) {
    state.epoch = epoch + 1;
    state.batch_in_epoch = 0;
  }
  actions.save_checkpoint();
  return result.early_stopped;
}

}  // namespace

void run_fine_tuning_loop(TrainingEngine& engine, const TrainerOptions& options,
                          ProcessGroup* group, int64_t epochs, int64_t total_steps, size_t losses,
                          const FineTuningSteps& steps, Progress& progress, TrainResult& result) {
  TrainingState& state = engine.state();
  stop_requested() = false;
  LogWindow window;
  // This optimizer step's losses: the global batch's mean, summed over its batches.
  std::vector<double> step_loss(losses, 0.0);
  int64_t last_eval_step = -1;
  bool done = state.global_step >= total_steps;
  for (int64_t epoch = state.epoch; epoch < epochs && !done; ++epoch) {
    const int64_t batches = steps.begin_epoch(epoch);
    const RunActions actions{[&] {
                               last_eval_step = state.global_step;
                               return steps.evaluate(epoch);
                             },
                             steps.save_checkpoint};
    int64_t micro = 0;
    engine.optimizer().zero_grad();
    for (int64_t b = state.batch_in_epoch; b < batches; ++b) {
      window.add_batch(steps.train_batch(epoch, b, step_loss));
      ++micro;
      const bool last_batch = b + 1 == batches;
      if (micro % options.gradient_accumulation != 0 && !last_batch) continue;
      // In a group, one all-reduce: the gradients, the step's losses and the stop flag.
      const bool stop = group && all_reduce_step(*group, engine.trainable(), step_loss);
      for (const double loss : step_loss) window.add_loss(loss);
      if (steps.stepped) steps.stepped(step_loss);
      std::fill(step_loss.begin(), step_loss.end(), 0.0);
      const double lr = engine.step();
      const StepPosition position{epoch, epochs, b + 1, batches, total_steps};
      if (auto event = report_step(options, state, position, lr, window, progress)) {
        steps.log(*event);
        window.reset();
      }
      // Alone, a stop asked for during this step (or its evaluation) counts now; in a group,
      // every process learns of it in the next step's all-reduce, and all stop there together.
      auto stop_now = [&]() -> bool { return group ? stop : stop_requested().load(); };
      if (after_step(options, state, total_steps, stop_now, actions, progress, result)) {
        done = true;
        break;
      }
    }
    if (result.interrupted) break;
    if (end_epoch(state, epoch, batches, last_eval_step, actions, result)) done = true;
  }
  result.steps = state.global_step;
  result.skipped_steps = state.skipped_steps;
}

}  // namespace adaptertune::detail
