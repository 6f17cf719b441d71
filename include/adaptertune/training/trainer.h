#pragma once
/// @file trainer.h
/// Fine-tuning a BertForSequenceClassification on a GLUE task.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/precision.h"
#include "adaptertune/tasks/batcher.h"
#include "adaptertune/tasks/task_description.h"
#include "adaptertune/text/tokenizer.h"
#include "adaptertune/training/freeze_policy.h"
#include "adaptertune/training/interrupt.h"
#include "adaptertune/training/scheduler.h"
#include "adaptertune/training/training_engine.h"

namespace adaptertune {

class ProcessGroup;

/// Options of Trainer (defaults suit adapter training of a BERT base).
struct TrainerOptions {
  int64_t epochs = 3;
  /// Stop after this many optimizer steps (0: run all epochs).
  int64_t max_steps = 0;
  int64_t batch_size = 32;
  int64_t eval_batch_size = 128;
  int64_t gradient_accumulation = 1;
  double lr = 1e-3;
  double weight_decay = 0.01;
  /// The decay after a linear warmup of warmup_ratio of all steps.
  ScheduleKind schedule = ScheduleKind::kLinear;
  double warmup_ratio = 0.1;
  /// Clip the global gradient norm (0: no clipping).
  double max_grad_norm = 1.0;
  bool group_by_length = true;
  /// Evaluate on dev every N optimizer steps (0: only at each epoch end).
  int64_t eval_every = 0;
  int64_t log_every = 50;
  /// Stop after this many evaluations without improvement (0: never).
  int64_t early_stopping_patience = 0;
  uint64_t seed = 42;
  c10::Device device = c10::Device(c10::kCPU);
  Precision precision = Precision::kFloat32;
  /// The length the data was encoded with; recorded in the adapter packs written, so that
  /// evaluation and prediction default to it (0: not recorded).
  int64_t max_length = 0;
  /// Run directory: metrics.jsonl, checkpoints/, best/ (best model), results.json.
  std::string output_dir;
  int keep_checkpoints = 2;
  /// Continue from the newest checkpoint in output_dir/checkpoints, if any. The checkpoint is
  /// checked against this run (its data, batch size, accumulation and seed) before it is used,
  /// metrics.jsonl is cut back to the checkpoint's step (so that no event appears twice) and the
  /// temporaries of an interrupted checkpoint write are removed. Other options may change (more
  /// steps, another learning rate): the options each checkpoint records are compared with this
  /// run's, and what differs is said and kept in run.json's "resumes" and the "resume" event.
  bool resume = false;
  /// Replace a run already in output_dir: its files are removed first. Without `resume` or
  /// `overwrite`, an output_dir that holds anything is refused. A directory holding anything
  /// that is not part of a run is never written into (check_output_directory()).
  bool overwrite = false;
  /// Files and directories the run reads (the model, the data): none may lie in output_dir.
  std::vector<std::string> inputs;
  /// Where the model's weights came from, recorded in run.json under "base" beside their
  /// identity as the run starts (base_weights_sha256(), base_config_sha256()): the model
  /// directory they were read from, or, with `base_random_init`, whose config BERT's random
  /// initialisation used. Empty: a model built in code (only the identity is recorded).
  std::string base_model_dir;
  bool base_random_init = false;
  /// AdapterDrop's cache: when the task's adapter leaves out the lowest layers (leave_out
  /// 0..k-1), those layers and the embeddings run without dropout (eval mode), their output for
  /// each training example is kept after its first batch, and later epochs start at layer k
  /// from the cache. Needs an adapter that leaves out layer 0 (Error otherwise). The
  /// QuestionAnsweringTrainer keeps each window at the longest window's length (its loss reads
  /// padded positions). Dev evaluations keep each dev example's output of those layers at the
  /// first evaluation and start later ones from it (the same scores). Past `cache_max_bytes`
  /// the dev set goes without (the training tokens fit, not the dev tokens beside them), or the
  /// run trains without any (the training tokens alone do not fit).
  bool cache_frozen_layers = false;
  /// Gradient checkpointing (BertEncoderImpl::set_gradient_checkpointing()): every encoder layer
  /// keeps only its input for the backward pass and runs again there. The same gradients, with
  /// a fraction of the activation memory, for about one more forward pass per step. When false,
  /// the model's own setting stands.
  bool gradient_checkpointing = false;
  /// The finer grain (BertEncoderImpl::set_recompute_attention_probabilities()): the attention
  /// probabilities are computed again in backward instead of kept. The same gradients; pays at
  /// long sequences (bert-base at seq 128: 0.28 GB less for 1.03-1.07x the time), barely at
  /// short ones. When false, the model's own setting stands.
  bool recompute_attention_probabilities = false;
  /// The encoder's last layer computes the first position only in training too, all that the
  /// head reads (BertForSequenceClassificationImpl::set_training_last_layer()): the same loss and
  /// gradients up to the order of sums, for most of one layer's work less (at the main job's
  /// shape about a fifth of a step). Dropout draws its masks over the smaller tensors, so a seed
  /// trains along another path than without it. When false, the model's own setting stands.
  /// Sequence classification only (QuestionAnsweringTrainer refuses it).
  bool last_layer_first_position = false;
  /// Memory the cache may take (bytes, where the model trains); a larger one is not built and
  /// training goes on without it (a message says so).
  int64_t cache_max_bytes = int64_t{4} << 30;
  /// A run of several tasks: the temperature T of the task sampling (TaskSampler). 1 samples
  /// each task's batches in proportion to its data, so that every task makes one pass over its
  /// data per epoch; larger T flattens towards uniform.
  double sampling_temperature = 1.0;
  /// Data-parallel training: the group this process trains in (distributed/process_group.h);
  /// null: one process. Every process of the group runs train() with the same options and data.
  /// `batch_size` is then the global batch, shared out among the processes (each takes a slice
  /// of every batch of the one data order), so that a run gives the result of one process with
  /// that batch (with dropout off), and resumes with any number of processes. With dropout on,
  /// each process of a group of several draws its masks from a stream of its own (the seed, the
  /// batch's place and its rank), so that no two drop the same elements of their slices, and the
  /// group takes another path than one process (the QuestionAnsweringTrainer does the same).
  /// The summed gradients of the trainable tensors are all-reduced once per optimizer step, each
  /// evaluation's batches are shared out (evaluate(): every process then has all the metrics),
  /// and only rank 0 writes the run directory, which must be one that every process can read for
  /// a resume. Ctrl-C on any process stops all of them at the next step.
  std::shared_ptr<ProcessGroup> process_group;
  /// Progress bar on a terminal, plain lines otherwise; false: silent.
  bool progress = true;
  /// Called after every optimizer step with the global step (custom logging, tests).
  std::function<void(int64_t)> on_step;

  /// Throws Error naming the first option out of its range (with the range), or resume together
  /// with overwrite. Changes nothing.
  void validate() const;
  /// The TrainingEngine these options describe for a run of `total_steps` optimizer steps, with
  /// its checkpoints in `output_dir/checkpoints`.
  TrainingEngineOptions engine_options(int64_t total_steps) const;
};

/// Dev-set evaluation.
struct EvalResult {
  std::map<std::string, double> metrics;
  double loss = 0;
  /// Class ids or scores, one per example in dataset order.
  std::vector<double> predictions;
  /// Raw logits [examples, labels].
  std::vector<std::vector<float>> logits;
};

/// Runs `model` over `data` on `device` (no gradients, eval mode; the model is moved there
/// first, as Trainer::train() moves it, and stays there) and computes the task's metrics when
/// the data is labelled. In a `group` (every process calls it with the same model and data)
/// each process runs its share of the batches and every process gets the whole result, equal
/// to one process's. Throws Error when the model's head does not give one score per label (one
/// for a regression task).
EvalResult evaluate(BertForSequenceClassification& model, const TaskDescription& task,
                    const EncodedDataset& data, int64_t batch_size, c10::Device device,
                    Precision precision, int64_t pad_id, ProcessGroup* group = nullptr);

/// One task of a training run: its data and the task of the model (adapter or fusion) that
/// learns it.
struct TrainingTask {
  TaskDescription info;
  EncodedDataset train;
  EncodedDataset dev;
  /// The model's task (adapter or fusion) that trains; std::nullopt: the plain base, allowed only
  /// when it is the run's only task.
  std::optional<std::string> adapter;
  /// Adapters of the model that `adapter` trains on top of, bottom first (AdapterHub's
  /// `Stack(lang, task)`, as MAD-X trains a task adapter on a language adapter): they run below
  /// it at every adapter site, in training and in evaluation, and stay frozen. Empty: the
  /// adapter alone. None of them may be a task this run trains.
  std::vector<std::string> stacked_on;

  /// What runs while the task trains and is evaluated: `stacked_on`, then `adapter`
  /// (std::nullopt when the task trains the plain base).
  std::optional<Stack> active_stack() const;
};

/// How one task of a run did.
struct TaskTrainResult {
  /// The GLUE task's name and the model's task (adapter) that learnt it.
  std::string task;
  std::optional<std::string> adapter;
  std::map<std::string, double> best_metrics;
  int64_t best_step = -1;
  /// Training batches of this task the run went through.
  int64_t batches = 0;
  /// Its best model (`output_dir/best`, or `output_dir/best/<adapter>` in a run of several tasks).
  std::optional<std::string> best_model;
};

struct TrainResult {
  /// The best evaluation of the run's only task (a run of several tasks: see `tasks`).
  std::map<std::string, double> best_metrics;
  int64_t best_step = -1;
  int64_t steps = 0;
  /// Steps whose update fp16's loss scaling dropped because a gradient overflowed (always 0 in
  /// fp32 and bf16), resumed runs' included: counted in `steps`, they trained nothing.
  int64_t skipped_steps = 0;
  bool interrupted = false;
  bool early_stopped = false;
  double seconds = 0;
  /// Layers served from the frozen-layer cache (0: no cache), the training batches that were,
  /// and the dev evaluations' batches that were (those after the first evaluation's).
  int64_t cached_layers = 0;
  int64_t batches_from_cache = 0;
  int64_t eval_batches_from_cache = 0;
  /// Where the best model of the only task is (`output_dir/best`), when an evaluation has
  /// written one.
  std::optional<std::string> best_model;
  /// Every task's results, in the run's order.
  std::vector<TaskTrainResult> tasks;
};

/// Fine-tunes with AdamW (no weight decay on biases and LayerNorms), a warmup + decay schedule,
/// gradient clipping and accumulation, evaluation on dev, the best model kept by the task's main
/// metric (as an adapter pack when an adapter trains, else as a model directory with the
/// tokenizer's files), early
/// stopping, crash-safe checkpoints and exact resume (train() seeds LibTorch with `seed` for
/// dropout and data order; call set_seed() before building the model and adding adapters so
/// that their initialisation repeats too), and Ctrl-C handling (stop_requested(), set
/// by StopOnInterrupt on SIGINT, saves a checkpoint and returns with `interrupted`).
///
/// With an adapter (a task), the policy must train it (TrainMode::kAdapters or
/// kAdaptersAndHead): the best model of full or head-only training is a model directory, which
/// holds no adapters, so that combination is refused (Error) rather than losing the adapter.
/// train() makes the task active and trains only its own tensors (prepare_task_training(): its
/// LayerNorm and pooler copies and its head are made when the policy needs them), so the shared
/// base and the other tasks of the model are left exactly as they were. Without an adapter the
/// plain base (and the model's own head) trains.
///
/// Several tasks in one run (multi-task training): each task trains its own adapter and head on
/// the shared frozen base. Every batch comes from one task, interleaved by a TaskSampler (see
/// TrainerOptions::sampling_temperature); an epoch is then one round of the sampler, the sum of
/// the tasks' batches per epoch. One AdamW and one schedule serve all tasks; AdamW and clipping
/// see only the gradients of the tasks in the step. Every evaluation measures every task on its
/// own dev set (one `eval` event per task in metrics.jsonl, with `"task"`), each task keeps its
/// own best pack in `output_dir/best/<adapter>`, and early stopping waits until no task has
/// improved for the patience. A task's head must fit its labels: give each task its head
/// (add_task_head()) before training when the model's own head does not fit them all.
class Trainer {
 public:
  /// Checks `options` (validate()) and what output_dir holds against resume/overwrite and the
  /// inputs, without writing anything: the checks the constructor makes, for a caller that wants
  /// them before it loads a model.
  static void check_options(const TrainerOptions& options);

  /// `tokenizer` (which must outlive train()) encoded the data; its padding id pads batches and
  /// its files go into the model directories written.
  Trainer(BertForSequenceClassification& model, const TaskDescription& task, EncodedDataset train,
          EncodedDataset dev, FreezePolicy policy, std::optional<std::string> adapter_name,
          TrainerOptions options, const Tokenizer& tokenizer);
  /// Several tasks (or one) in one run. Throws Error when there is no task, a task's data has
  /// no labels, a task of several has no adapter, two tasks name one adapter, or a task's head
  /// does not fit its labels.
  Trainer(BertForSequenceClassification& model, std::vector<TrainingTask> tasks,
          FreezePolicy policy, TrainerOptions options, const Tokenizer& tokenizer);
  TrainResult train();

 private:
  BertForSequenceClassification& model_;
  std::vector<TrainingTask> tasks_;
  FreezePolicy policy_;
  TrainerOptions options_;
  const Tokenizer& tokenizer_;
};

}  // namespace adaptertune
