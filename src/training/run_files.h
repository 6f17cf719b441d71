#pragma once
// What a fine-tuning run keeps in its directory and shows while it runs, shared by the Trainer
// and the QuestionAnsweringTrainer: the run directory's layout, metrics.jsonl, the progress
// display, and how a best model is swapped into place.

#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "adaptertune/io/output_directory.h"
#include "adaptertune/training/checkpoint.h"
#include "adaptertune/training/trainer.h"

namespace adaptertune {
class BertEncoderImpl;
class BertModelImpl;
class TrainingEngine;
}  // namespace adaptertune

namespace adaptertune::detail {

/// What a run directory may hold.
OutputDirectory run_directory(const std::string& path);

/// One line per event in metrics.jsonl, flushed at once so that a crash loses nothing logged.
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);
  void write(const nlohmann::ordered_json& event);

 private:
  std::ofstream out_;
};

/// A run's `output_dir`/metrics.jsonl, opened for appending. A run `resumed` from a checkpoint at
/// `step` keeps the events up to it (those after it are logged again as the run repeats them)
/// and loses a line torn by a kill; a fresh start keeps none.
MetricsLog open_metrics_log(const std::string& output_dir, bool resumed, int64_t step);

/// fp16's loss scaling in a "train" event: the scale now, and how many steps an overflow skipped
/// so far (nothing without loss scaling).
void add_loss_scaling(nlohmann::ordered_json& event, const TrainingState& state);

/// Progress bar on a terminal, plain periodic lines otherwise.
class Progress {
 public:
  explicit Progress(bool enabled);
  void update(int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, double loss, double lr,
              double examples_per_second, double eta, bool log_line);
  void message(const std::string& text);

 private:
  bool enabled_, tty_;
};

/// A task's standing in a run: its best evaluation and the early-stopping count.
struct TaskProgress {
  double best = -std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  int64_t evals_without_improvement = 0;
  std::map<std::string, double> best_metrics;
};

/// TaskProgress as a checkpoint keeps it.
nlohmann::ordered_json task_progress_json(const TaskProgress& progress);

/// `json` (key `key` of `file`) as the TaskProgress of a checkpoint at `global_step`; Error naming
/// the file and key when it cannot be one. JSON exceptions are left to the caller.
TaskProgress read_task_progress(const nlohmann::ordered_json& json, const std::string& file,
                                const std::string& key, int64_t global_step);

/// A LogWindow's throughput, read once: a log line's rate and its time left agree.
struct WindowRate {
  double examples_per_second = 0;
  /// Seconds for `examples` more at this rate (0 before a rate is known).
  double seconds_for(double examples) const {
    return examples_per_second > 0 ? examples / examples_per_second : 0.0;
  }
};

/// The training loss and throughput since the last log line.
class LogWindow {
 public:
  /// A batch of `examples` went through.
  void add_batch(int64_t examples);
  /// Adds to the loss summed over the window's batches.
  void add_loss(double loss) { loss_ += loss; }
  /// The mean loss per batch of the window.
  double mean_loss() const;
  /// The examples per second since the window started.
  WindowRate rate() const;
  /// Starts a new window.
  void reset();

 private:
  double loss_ = 0;
  int64_t batches_ = 0, examples_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// The machine a run ran on, as run.json records it under "machine": hardware threads, LibTorch's
/// thread count, whether CUDA is available, and the CPU allocator (runtime.h, cpu_allocator()).
nlohmann::ordered_json machine_json();

/// TrainerOptions as run.json records them under "options".
nlohmann::ordered_json trainer_options_json(const TrainerOptions& options);

/// The base a run starts from, as run.json records it under "base": where it came from
/// (options.base_model_dir, base_random_init) and the identity of `model`'s base weights (the
/// pooler left out: a base without one gets a new one, drawn from the run's seed) and config now.
/// Taken before a resume restores trained weights, so that a resumed run of full fine-tuning still
/// names the base it started from.
nlohmann::ordered_json base_json(const TrainerOptions& options, torch::nn::Module& model,
                                 const BertConfig& config);

/// Turns on in `encoder` what `options` asks to recompute in backward rather than keep
/// (gradient_checkpointing, recompute_attention_probabilities); what they leave false stays as
/// the model has it.
void apply_recompute_options(const TrainerOptions& options, BertEncoderImpl& encoder);

/// The configs of the model's `task` (an adapter or a fusion; std::nullopt: the plain base) as
/// run.json and every checkpoint record them: {"adapter_config": its AdapterHub config, or null
/// for the plain base; "fusion_config": its fusion's config, or null when it is not a fusion}.
nlohmann::ordered_json task_configs_json(const BertModelImpl& bert,
                                         const std::optional<std::string>& task);

/// What both trainers keep of a run's options across resumes: every checkpoint records them
/// (stamped()), a resume compares the checkpoint's with this run's (compare_with()), and the run
/// directory says what changed: the resume message, the "resume" event and run.json's "resumes".
struct ResumeRecord {
  /// `task_options`: a trainer's own options beyond TrainerOptions (flat keys), compared alike.
  explicit ResumeRecord(
      const TrainerOptions& run_options,
      const nlohmann::ordered_json& task_options = nlohmann::ordered_json::object());

  /// This run's options (trainer_options_json() and the task's), as run.json and every
  /// checkpoint record them.
  nlohmann::ordered_json options;
  /// {option: [the value the resumed checkpoint's steps were trained with, this run's]} for each
  /// option that differs; options either side lacks are left out (a checkpoint from before
  /// options were recorded gives none). Empty unless compare_with() found a difference.
  nlohmann::ordered_json changed = nlohmann::ordered_json::object();
  /// Whether the run continues a checkpoint.
  bool resumed = false;

  /// The configs of the adapters and fusions the run trains, by the model's task name
  /// (task_configs_json()): every checkpoint records them (stamped()).
  nlohmann::ordered_json adapters = nlohmann::ordered_json::object();

  /// Sets `changed` from the options a checkpoint's extra state records.
  void compare_with(const nlohmann::ordered_json& checkpoint_extra);
  /// Throws Error naming the checkpoint's `path`, the task and the key when `checkpoint_extra`
  /// records a config of one of this run's tasks that computes otherwise than `adapters` does: a
  /// resume continues the model its steps trained, so only dropout and the initialisation
  /// (which the checkpoint's weights replace) may differ, as in continued pretraining. A
  /// checkpoint from before configs were recorded has none to compare.
  void check_same_adapters(const nlohmann::ordered_json& checkpoint_extra,
                           const std::string& path) const;
  /// `extra` with this run's options under "options", for a checkpoint.
  nlohmann::ordered_json stamped(nlohmann::ordered_json extra) const;
  /// run.json's "resumes": empty for a run that did not resume; else those the run.json in
  /// `output_dir` lists before `step` (one at or after it was an attempt whose steps the resume
  /// discards; a run.json that is not JSON lists none), then {"step", "changed"}.
  nlohmann::ordered_json history(const std::string& output_dir, int64_t step) const;
  /// The "resume" event metrics.jsonl gets at `step`, with `changed` when there is any.
  nlohmann::ordered_json event(int64_t step) const;
};

/// What a trainer reads back from a checkpoint's extra state (its own JSON, parsed), before the
/// checkpoint changes the model: `path` names the file for errors, `step` is the checkpoint's.
/// Throws Error (or a JSON exception, reported as a malformed state) to refuse it.
using ReadExtraState =
    std::function<void(const nlohmann::ordered_json& extra, const std::string& path, int64_t step)>;

/// TrainerOptions::resume, as both trainers do it: on rank 0 (`writes`) removes what a killed
/// checkpoint or best-model write left; continues the newest checkpoint (TrainingEngine::resume()
/// with `batches_per_epoch` batches, the options' accumulation and seed, and the data's
/// `fingerprint`; a checkpoint made under a stack, `stacked_on`, that this run's fingerprint
/// lacks is refused), comparing `record` with the options its steps were trained with and handing
/// its extra state to `read_extra`; then says what it found: the checkpoint and the options
/// changed, or none. Throws Error when there is none but the run directory holds a run
/// (run.json): starting afresh would replace it, which is what overwrite is for.
void resume_run(TrainingEngine& engine, const TrainerOptions& options, int64_t batches_per_epoch,
                bool writes, const std::string& fingerprint, ResumeRecord& record,
                Progress& progress, const ReadExtraState& read_extra);

/// "accuracy 0.8123, f1 0.7000" for a log line.
std::string metrics_text(const std::map<std::string, double>& metrics);

/// Where a run writes a best model before it takes its place: `output_dir`/.best.tmp, emptied
/// first (of what a killed write left).
std::string empty_best_staging(const std::string& output_dir);

/// Moves the model written to empty_best_staging(`output_dir`) to `target` (`best/`, or a task's
/// directory in it), replacing what is there: the previous one waits in `.best.old` meanwhile,
/// so that a crash leaves one of them whole. Error naming `target` when the move fails.
void move_best_into_place(const std::string& output_dir, const std::string& target);

/// `directory` when an evaluation has kept a model there (a task that improved at `best_step`
/// 0 or later, and the directory holds an adapter pack, a fusion pack or a model directory);
/// else std::nullopt: what TrainResult::best_model and TaskTrainResult::best_model say.
std::optional<std::string> kept_best_model(const std::string& directory, int64_t best_step);

}  // namespace adaptertune::detail
