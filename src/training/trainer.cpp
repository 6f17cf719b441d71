#include "adaptertune/training/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <optional>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/device.h"
#include "adaptertune/distributed/process_group.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/directory_lock.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/output_directory.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/tasks/metrics.h"
#include "adaptertune/tasks/task_sampler.h"
#include "adaptertune/training/checkpoint.h"
#include "adaptertune/training/optimizer.h"
#include "adaptertune/training/scheduler.h"
#include "adaptertune/training/training_engine.h"
#include "adaptertune/version.h"
#include "distributed/shared_batches.h"
#include "run_checks.h"
#include "sha256.h"
#include "training/cached_evaluation.h"
#include "training/data_parallel.h"
#include "training/fine_tuning_loop.h"
#include "training/frozen_layer_cache.h"
#include "training/run_files.h"

namespace adaptertune {
namespace {

using Json = nlohmann::ordered_json;
using detail::metrics_text;
using detail::MetricsLog;
using detail::Progress;
using detail::read_task_progress;
using detail::run_directory;
using detail::task_progress_json;
using detail::TaskProgress;

// What a checkpoint's position means only together with: the data and how it is batched. Stored
// in the checkpoint and compared on resume.
Json data_fingerprint(const EncodedDataset& train, const TrainerOptions& options) {
  // The targets too: the same texts with other labels are other training data.
  detail::Sha256 targets;
  targets.update(train.targets.data(), train.targets.size() * sizeof(train.targets[0]));
  return {{"train_examples", train.encodings.size()},
          {"batch_size", options.batch_size},
          {"gradient_accumulation", options.gradient_accumulation},
          {"group_by_length", options.group_by_length},
          {"train_sha256", detail::encodings_sha256(train.encodings)},
          {"targets_sha256", targets.hex_digest()}};
}

// The fingerprint of a run: its one task's data, or, for several, each task's data under
// "<adapter>.<key>" with the tasks and the sampling that interleaves them (flat, so that a
// mismatch names the key that differs).
Json run_fingerprint(const std::vector<TrainingTask>& tasks, const TrainerOptions& options) {
  if (tasks.size() == 1) {
    Json out = data_fingerprint(tasks[0].train, options);
    // A resume under another stack would train on other inputs (absent: no stack, as before).
    if (!tasks[0].stacked_on.empty()) out["stacked_on"] = tasks[0].stacked_on;
    return out;
  }
  std::string names;
  for (const TrainingTask& task : tasks) names += (names.empty() ? "" : ",") + *task.adapter;
  Json out = {{"tasks", names},
              {"sampling_temperature", options.sampling_temperature},
              {"batch_size", options.batch_size},
              {"gradient_accumulation", options.gradient_accumulation},
              {"group_by_length", options.group_by_length}};
  for (const TrainingTask& task : tasks) {
    const Json data = data_fingerprint(task.train, options);
    for (const auto& [key, value] : data.items()) {
      if (!out.contains(key)) out[*task.adapter + "." + key] = value;
    }
    if (!task.stacked_on.empty()) out[*task.adapter + ".stacked_on"] = task.stacked_on;
  }
  return out;
}

}  // namespace

EvalResult evaluate(BertForSequenceClassification& model, const TaskDescription& task,
                    const EncodedDataset& data, int64_t batch_size, c10::Device device,
                    Precision precision, int64_t pad_id, ProcessGroup* group) {
  return detail::evaluate_cached(model, task, data, batch_size, device, precision, pad_id, group,
                                 nullptr);
}

EvalResult detail::evaluate_cached(BertForSequenceClassification& model,
                                   const TaskDescription& task, const EncodedDataset& data,
                                   int64_t batch_size, c10::Device device, Precision precision,
                                   int64_t pad_id, ProcessGroup* group, FrozenLayerCache* cache) {
  check_device(device);
  Batcher batcher(data, BatcherOptions::for_inference(batch_size, pad_id));
  move_to_device(*model, device);  // the batches go there; a model loaded elsewhere follows
  const bool was_training = model->is_training();
  model->eval();
  c10::InferenceMode inference;  // nothing computed here is ever differentiated
  const auto examples = static_cast<int64_t>(data.encodings.size());
  const int64_t width = task.regression() ? 1 : static_cast<int64_t>(task.labels.size());
  const std::vector<std::vector<size_t>> order = batcher.epoch_order(0);
  // Each example's logits and each batch's summed loss, where this process computes them (in a
  // group, its share of the batches; zeros elsewhere until gathered).
  const at::Tensor logits_of = at::zeros({examples, width});
  const at::Tensor batch_losses = at::zeros({static_cast<int64_t>(order.size())}, at::kDouble);
  float* const logits_data = logits_of.data_ptr<float>();
  double* const losses_data = batch_losses.data_ptr<double>();
  for (size_t b = 0; b < order.size(); ++b) {
    if (!detail::evaluates_batch(b, group)) continue;
    const std::vector<size_t>& rows = order[b];
    Batch batch = batcher.make_batch(rows).to(device);
    torch::Tensor logits;
    {
      AutocastGuard autocast(device, precision);
      logits = cache != nullptr
                   ? model->forward_from(cache->lower_states(*model->bert, batch),
                                         batch.attention_mask, cache->layers())
                   : model(batch.input_ids, batch.attention_mask, batch.token_type_ids);
      logits = logits.to(at::kFloat);
    }
    if (logits.size(1) != width) {
      throw Error("evaluate: the model's head gives " + std::to_string(logits.size(1)) +
                  " scores per example, task " + task.name + " expects " + std::to_string(width));
    }
    if (batch.labels.defined()) {
      losses_data[b] =
          model->loss(logits, batch.labels).item<double>() * static_cast<double>(rows.size());
    }
    const at::Tensor cpu = logits.cpu().contiguous();
    const float* row = cpu.data_ptr<float>();
    for (size_t i = 0; i < rows.size(); ++i, row += width) {
      std::copy(row, row + width, logits_data + static_cast<int64_t>(rows[i]) * width);
    }
  }
  model->train(was_training);
  if (group) detail::gather_by_sum(*group, {logits_of, batch_losses}, device);
  EvalResult result;
  const at::Tensor predicted =
      (task.regression() ? logits_of.squeeze(-1) : logits_of.argmax(-1)).to(at::kDouble);
  result.predictions.assign(predicted.data_ptr<double>(), predicted.data_ptr<double>() + examples);
  result.logits.resize(static_cast<size_t>(examples));
  for (int64_t i = 0; i < examples; ++i) {
    result.logits[static_cast<size_t>(i)].assign(logits_data + i * width,
                                                 logits_data + (i + 1) * width);
  }
  if (!data.targets.empty()) {
    result.metrics = task_metrics(task, result.predictions, data.targets);
    double loss_sum = 0;  // in batch order, as one process sums
    for (size_t b = 0; b < order.size(); ++b) loss_sum += losses_data[b];
    result.loss = loss_sum / static_cast<double>(examples);
  }
  return result;
}

TrainingEngineOptions TrainerOptions::engine_options(int64_t total_steps) const {
  TrainingEngineOptions engine;
  engine.lr = lr;
  engine.schedule = schedule;
  engine.warmup_ratio = warmup_ratio;
  engine.total_steps = total_steps;
  engine.weight_decay = weight_decay;
  engine.max_grad_norm = max_grad_norm;
  engine.gradient_accumulation = gradient_accumulation;
  engine.device = device;
  engine.precision = precision;
  engine.checkpoint_dir = output_dir + "/checkpoints";
  engine.keep_checkpoints = keep_checkpoints;
  engine.data_seed = seed;
  return engine;
}

void TrainerOptions::validate() const {
  const char* owner = "TrainerOptions";
  detail::check_at_least(owner, "epochs", epochs, 0);
  detail::check_at_least(owner, "max_steps", max_steps, 0);
  if (epochs < 1 && max_steps < 1) throw Error("TrainerOptions: need epochs or max_steps");
  detail::check_at_least(owner, "batch_size", batch_size, 1);
  detail::check_at_least(owner, "eval_batch_size", eval_batch_size, 1);
  detail::check_at_least(owner, "gradient_accumulation", gradient_accumulation, 1);
  detail::check_finite(owner, "lr", lr, 0, /*exclusive=*/true);
  detail::check_finite(owner, "weight_decay", weight_decay, 0);
  detail::check_fraction(owner, "warmup_ratio", warmup_ratio);
  detail::check_finite(owner, "max_grad_norm", max_grad_norm, 0);
  detail::check_at_least(owner, "eval_every", eval_every, 0);
  detail::check_at_least(owner, "log_every", log_every, 1);
  detail::check_at_least(owner, "early_stopping_patience", early_stopping_patience, 0);
  detail::check_at_least(owner, "max_length", max_length, 0);
  detail::check_at_least(owner, "keep_checkpoints", keep_checkpoints, 1);
  detail::check_finite(owner, "sampling_temperature", sampling_temperature, 0,
                       /*exclusive=*/true);
  if (output_dir.empty()) throw Error("TrainerOptions: an output directory is required");
  check_precision(device, precision);
  existing_output_mode(resume, overwrite);
}

void Trainer::check_options(const TrainerOptions& options) {
  options.validate();
  // Only rank 0 writes the run directory; the others never look at it before a resume.
  if (!is_main_process(options.process_group.get())) return;
  check_output_directory(run_directory(options.output_dir),
                         existing_output_mode(options.resume, options.overwrite), options.inputs);
}

std::optional<Stack> TrainingTask::active_stack() const {
  if (!adapter) return std::nullopt;
  return Stack::on_top_of(stacked_on, *adapter);
}

Trainer::Trainer(BertForSequenceClassification& model, const TaskDescription& task,
                 EncodedDataset train, EncodedDataset dev, FreezePolicy policy,
                 std::optional<std::string> adapter_name, TrainerOptions options,
                 const Tokenizer& tokenizer)
    : Trainer(model,
              {TrainingTask{task, std::move(train), std::move(dev), std::move(adapter_name), {}}},
              policy, std::move(options), tokenizer) {}

Trainer::Trainer(BertForSequenceClassification& model, std::vector<TrainingTask> tasks,
                 FreezePolicy policy, TrainerOptions options, const Tokenizer& tokenizer)
    : model_(model),
      tasks_(std::move(tasks)),
      policy_(policy),
      options_(std::move(options)),
      tokenizer_(tokenizer) {
  check_options(options_);
  if (tasks_.empty()) throw Error("Trainer: no task to train");
  policy_.check_fits(model_->bert->config().num_hidden_layers);
  if (options_.process_group && options_.batch_size < options_.process_group->world_size()) {
    throw Error("Trainer: batch_size " + std::to_string(options_.batch_size) +
                " is the global batch, shared out among the " +
                std::to_string(options_.process_group->world_size()) +
                " processes: it must be at least that many");
  }
  const bool several = tasks_.size() > 1;
  std::vector<std::string> adapters;
  for (const TrainingTask& task : tasks_) {
    const std::string label =
        "Trainer: task " + task.info.name + (task.adapter ? " (" + *task.adapter + ")" : "");
    task.info.validate();
    if (task.train.targets.empty()) throw Error(label + ": the training data has no labels");
    if (task.dev.targets.empty()) throw Error(label + ": the dev data has no labels");
    if (!task.adapter) {
      if (several) {
        throw Error(label +
                    ": a run of several tasks trains each on its own adapter; this one has none");
      }
      continue;
    }
    if (std::find(adapters.begin(), adapters.end(), *task.adapter) != adapters.end()) {
      throw Error(label + ": adapter \"" + *task.adapter +
                  "\" already trains another task of the run; each task needs its own");
    }
    adapters.push_back(*task.adapter);
    model_->bert->adapter_config(*task.adapter);  // throws when the model has no such adapter
    check_policy_trains_adapter(policy_, *task.adapter);
    // The head the task will train: its own, else (made by prepare_task_training()) the model's.
    const HeadConfig& head = model_->head_config(
        model_->has_task_head(*task.adapter) ? task.adapter : std::optional<std::string>());
    const bool regression_head = head.problem_type == ProblemType::kRegression;
    if (regression_head != task.info.regression() ||
        (!regression_head && head.num_labels != static_cast<int64_t>(task.info.labels.size()))) {
      auto describe = [](bool regression, int64_t labels) {
        return regression ? std::string("a regression head")
                          : "a head of " + std::to_string(labels) + " labels";
      };
      throw Error(label + " needs " +
                  describe(task.info.regression(), static_cast<int64_t>(task.info.labels.size())) +
                  ", the task would train " + describe(regression_head, head.num_labels) +
                  " (give it its own with add_task_head())");
    }
    if (options_.cache_frozen_layers) detail::adapter_free_layers(*model_->bert, task.adapter);
  }
  for (const TrainingTask& task : tasks_) {
    detail::check_stacked_on(*model_->bert, task.adapter, task.stacked_on, adapters,
                             "Trainer: task " + task.info.name);
  }
  if (options_.cache_frozen_layers && !tasks_.front().adapter) {
    detail::adapter_free_layers(*model_->bert, std::nullopt);  // throws: the cache needs one
  }
}

TrainResult Trainer::train() {
  const auto start = std::chrono::steady_clock::now();
  const c10::Device device = options_.device;
  check_device(device);
  // Checked again: the directory may have changed since the constructor.
  check_options(options_);
  ProcessGroup* const group = options_.process_group.get();
  // Rank 0 writes the run directory; the other processes of a group write nothing.
  const bool writes = is_main_process(group);
  // Held for the whole run: a second run on this directory fails here instead of interleaving
  // its checkpoints and metrics with this one's (or clearing them, with overwrite).
  std::optional<DirectoryLock> lock;
  if (writes) {
    lock.emplace(options_.output_dir, "run directory");  // made here when missing
    if (options_.overwrite) clear_output_directory(run_directory(options_.output_dir));
  }
  torch::manual_seed(options_.seed);
  move_to_device(*model_, device);
  model_->train();
  const size_t task_count = tasks_.size();
  const bool several = task_count > 1;
  // The tasks train on their own tensors (copies of the base's made here when needed); training
  // without one trains the plain base.
  if (tasks_.front().adapter) {
    std::vector<std::string> adapters;
    for (const TrainingTask& task : tasks_) adapters.push_back(*task.adapter);
    prepare_task_training(*model_, adapters, policy_);
  } else {
    model_->bert->set_active_adapter(std::nullopt);
    apply_freeze_policy(*model_, policy_);
  }
  auto activate = [&](size_t t) {
    if (const std::optional<Stack> stack = tasks_[t].active_stack()) {
      model_->bert->set_active_stack(*stack);
    }
  };
  activate(0);

  BatcherOptions batching;
  batching.batch_size = options_.batch_size;
  batching.group_by_length = options_.group_by_length;
  batching.seed = options_.seed;
  batching.pad_id = tokenizer_.pad_id();
  std::vector<Batcher> batchers;
  std::vector<int64_t> task_batches_per_epoch;
  for (const TrainingTask& task : tasks_) {
    batchers.emplace_back(task.train, batching);
    task_batches_per_epoch.push_back(batchers.back().batches_per_epoch());
  }
  const TaskSampler sampler(task_batches_per_epoch, options_.sampling_temperature, options_.seed);
  // An epoch: one round of the sampler (one task: one pass over its data).
  const int64_t batches = sampler.batches_per_round();
  const int64_t steps_per_epoch =
      (batches + options_.gradient_accumulation - 1) / options_.gradient_accumulation;
  int64_t total_steps = steps_per_epoch * options_.epochs;
  if (options_.max_steps > 0) total_steps = options_.max_steps;
  const int64_t epochs = (total_steps + steps_per_epoch - 1) / steps_per_epoch;
  detail::apply_recompute_options(options_, *model_->bert->encoder);
  if (options_.last_layer_first_position) {
    model_->set_training_last_layer(LastLayerOutput::kFirstPosition);
  }
  TrainingEngine engine(*model_, options_.engine_options(total_steps));
  TrainingState& state = engine.state();
  TrainResult result;
  std::vector<TaskProgress> progress_of(task_count);
  Progress progress(options_.progress && writes);
  const std::string fingerprint = json_text(run_fingerprint(tasks_, options_));
  // The options, recorded with every checkpoint; a resume says which changed since its steps.
  detail::ResumeRecord record(options_);
  for (const TrainingTask& task : tasks_) {
    if (task.adapter) {
      record.adapters[*task.adapter] = detail::task_configs_json(*model_->bert, task.adapter);
    }
  }
  // The base as the run starts, before a resume restores trained weights into it.
  const Json base =
      writes ? detail::base_json(options_, *model_, model_->bert->config()) : Json(nullptr);
  if (options_.resume) {
    // Each task's best evaluation and early-stopping count, read and checked before the
    // checkpoint changes the model.
    auto read_progress = [&](const Json& extra, const std::string& state_path, int64_t step) {
      if (several) {
        const Json& saved_tasks = extra.at("tasks");
        if (saved_tasks.size() != task_count) {
          throw Error(state_path + ": key 'extra.tasks' holds " +
                      std::to_string(saved_tasks.size()) + " tasks, this run has " +
                      std::to_string(task_count));
        }
        for (size_t t = 0; t < task_count; ++t) {
          progress_of[t] = read_task_progress(saved_tasks[t], state_path,
                                              "extra.tasks[" + std::to_string(t) + "]", step);
        }
      } else {
        progress_of[0] = read_task_progress(extra, state_path, "extra", step);
      }
    };
    detail::resume_run(engine, options_, batches, writes, fingerprint, record, progress,
                       read_progress);
  }

  if (group) {
    // Every process starts from rank 0's tensors, as one model.
    group->broadcast(trainable_parameters(*model_));
  }
  if (writes) {
    Json tasks_json = Json::array();
    std::string names, adapter_names;
    size_t train_examples = 0, dev_examples = 0;
    for (size_t t = 0; t < task_count; ++t) {
      const TrainingTask& task = tasks_[t];
      const Json configs = detail::task_configs_json(*model_->bert, task.adapter);
      names += (t ? "," : "") + task.info.name;
      adapter_names += (t ? "," : "") + task.adapter.value_or("");
      train_examples += task.train.encodings.size();
      dev_examples += task.dev.encodings.size();
      tasks_json.push_back(
          {{"task", task.info.name},
           {"adapter", task.adapter ? Json(*task.adapter) : Json(nullptr)},
           {"stacked_on", task.stacked_on},
           {"train_examples", task.train.encodings.size()},
           {"dev_examples", task.dev.encodings.size()},
           {"batches_per_epoch", task_batches_per_epoch[t]},
           {"batches_per_round", sampler.shares()[t]},
           {"adapter_config", configs["adapter_config"]},
           {"fusion_config", configs["fusion_config"]},
           {"parameters", Json::parse(parameter_report(*model_, task.adapter).to_json_string())}});
    }
    // A run of one task describes it at the top level; a run of several names them all there and
    // describes each under "tasks".
    const Json& first = tasks_json.front();
    Json run = {
        {"library_version", version()},
        {"torch_version", TORCH_VERSION},
        {"task", names},
        {"train_examples", train_examples},
        {"dev_examples", dev_examples},
        {"train_mode", policy_.name()},
        {"train_pooler", policy_.train_pooler},
        {"adapter", several ? Json(adapter_names) : first["adapter"]},
        {"stacked_on", several ? Json(nullptr) : first["stacked_on"]},
        {"adapter_config", several ? Json(nullptr) : first["adapter_config"]},
        {"fusion_config", several ? Json(nullptr) : first["fusion_config"]},
        {"model_config", Json::parse(model_->bert->config().to_json_string())},
        {"base", base},
        {"options", record.options},
        {"resumes", record.history(options_.output_dir, state.global_step)},
        {"parameters",
         several ? Json::parse(parameter_report(*model_).to_json_string()) : first["parameters"]},
        {"tasks", tasks_json},
        {"machine", detail::machine_json()},
        {"total_steps", total_steps},
    };
    write_file_atomic(options_.output_dir + "/run.json", json_text(run, 2) + "\n");
  }
  std::optional<MetricsLog> metrics_log;
  if (writes) {
    metrics_log.emplace(
        detail::open_metrics_log(options_.output_dir, record.resumed, state.global_step));
  }
  auto write_event = [&](const Json& event) {
    if (metrics_log) metrics_log->write(event);
  };
  if (record.resumed) write_event(record.event(state.global_step));

  auto save_checkpoint = [&]() {
    if (!writes) return;
    Json extra;
    if (several) {
      extra["tasks"] = Json::array();
      for (const TaskProgress& p : progress_of) extra["tasks"].push_back(task_progress_json(p));
    } else {
      extra = task_progress_json(progress_of[0]);
    }
    engine.save_checkpoint(fingerprint, json_text(record.stamped(std::move(extra))));
  };
  // The best model of task t: `best/` (one task), `best/<adapter>/` (several).
  auto best_directory = [&](size_t t) {
    return options_.output_dir + "/best" + (several ? "/" + *tasks_[t].adapter : "");
  };
  auto save_best = [&](size_t t) {
    const TrainingTask& task = tasks_[t];
    const std::string target = best_directory(t);
    const std::string temp = detail::empty_best_staging(options_.output_dir);
    if (task.adapter) {
      AdapterPackOptions pack;
      pack.train_mode = policy_.name();
      pack.max_length = options_.max_length;
      pack.precision = options_.precision;
      pack.stacked_on = task.stacked_on;
      save_adapter_pack(model_, *task.adapter, temp, pack);
    } else {
      save_pretrained(*model_, temp);
      save_tokenizer(
          tokenizer_, temp,
          options_.max_length > 0 ? std::optional<int64_t>(options_.max_length) : std::nullopt);
      // What a pack records, so that eval, predict and serve run the directory as it evaluated.
      write_model_directory_record(temp, {options_.max_length, std::nullopt, options_.precision});
    }
    if (several) make_directories(options_.output_dir + "/best");
    detail::move_best_into_place(options_.output_dir, target);
  };
  // AdapterDrop's cache of the frozen lowest layers' outputs, per task and training example
  // (each row kept without its padding: the sequence head reads the first position), and per
  // task and dev example for the evaluations.
  int64_t frozen_layers = 0;
  std::vector<detail::FrozenLayerCache> layer_cache(task_count), dev_cache(task_count);
  if (options_.cache_frozen_layers) {
    int64_t layers = model_->bert->config().num_hidden_layers;
    int64_t training_tokens = 0, dev_tokens = 0;
    for (const TrainingTask& task : tasks_) {
      layers = std::min(layers, detail::adapter_free_layers(*model_->bert, task.adapter));
      for (const auto& e : task.train.encodings) {
        training_tokens += static_cast<int64_t>(e.input_ids.size());
      }
      for (const auto& e : task.dev.encodings) {
        dev_tokens += static_cast<int64_t>(e.input_ids.size());
      }
    }
    const detail::FrozenLayerCachePlan plan = detail::plan_frozen_layer_caches(
        layers, training_tokens, dev_tokens, model_->bert->config().hidden_size,
        options_.cache_max_bytes);
    if (!plan.message.empty()) progress.message("train: " + plan.message);
    frozen_layers = plan.training;
    for (size_t t = 0; t < task_count; ++t) {
      layer_cache[t] = detail::FrozenLayerCache(plan.training, tasks_[t].train.encodings.size());
      dev_cache[t] = detail::FrozenLayerCache(plan.dev, tasks_[t].dev.encodings.size());
    }
    result.cached_layers = frozen_layers;
  }

  // Evaluates every task; returns true when training should stop early (no task has improved
  // for the patience).
  auto run_eval = [&](int64_t epoch) {
    bool stop = options_.early_stopping_patience > 0;
    for (size_t t = 0; t < task_count; ++t) {
      const TrainingTask& task = tasks_[t];
      TaskProgress& p = progress_of[t];
      activate(t);
      const auto eval_start = std::chrono::steady_clock::now();
      EvalResult eval =
          detail::evaluate_cached(model_, task.info, task.dev, options_.eval_batch_size,
                                  options_.device, options_.precision, tokenizer_.pad_id(), group,
                                  dev_cache[t].layers() > 0 ? &dev_cache[t] : nullptr);
      const double score = eval.metrics.at(task.info.selection_metric());
      const bool improved = score > p.best;
      Json event = {
          {"event", "eval"},
          {"step", state.global_step},
          {"epoch", epoch + 1},
          {"task", task.info.name},
          {"adapter", task.adapter ? Json(*task.adapter) : Json(nullptr)},
          {"dev_loss", eval.loss},
          {"metrics", eval.metrics},
          {"improved", improved},
          {"eval_s",
           std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count()},
          {"elapsed_s",
           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
      write_event(event);
      progress.message("eval: step " + std::to_string(state.global_step) + " " +
                       (several ? *task.adapter + " " : std::string()) + "dev " +
                       metrics_text(eval.metrics) + (improved ? " (best)" : ""));
      if (improved) {
        p.best = score;
        p.best_step = state.global_step;
        p.best_metrics = eval.metrics;
        p.evals_without_improvement = 0;
        if (writes) save_best(t);
      } else {
        ++p.evals_without_improvement;
      }
      stop = stop && p.evals_without_improvement >= options_.early_stopping_patience;
    }
    return group ? detail::rank0_decision(*group, stop, options_.device) : stop;
  };

  // Each task's place in its own data order: batches drawn so far, and the order of the data
  // epoch they are in.
  struct DataCursor {
    int64_t drawn = 0;
    int64_t order_epoch = -1;
    std::vector<std::vector<size_t>> order;
  };
  std::vector<DataCursor> cursors(task_count);
  auto next_rows = [&](size_t t) -> const std::vector<size_t>& {
    DataCursor& cursor = cursors[t];
    const int64_t per_epoch = task_batches_per_epoch[t];
    const int64_t data_epoch = cursor.drawn / per_epoch;
    if (cursor.order_epoch != data_epoch) {
      cursor.order = batchers[t].epoch_order(data_epoch);
      cursor.order_epoch = data_epoch;
    }
    return cursor.order[static_cast<size_t>(cursor.drawn++ % per_epoch)];
  };
  std::vector<double> window_task_loss(task_count, 0);
  std::vector<int64_t> window_task_batches(task_count, 0);
  std::vector<size_t> order;  // the round's task of each batch
  detail::FineTuningSteps steps;
  steps.begin_epoch = [&](int64_t epoch) {
    order = sampler.round_order(epoch);
    const std::vector<int64_t> drawn = sampler.drawn_before(epoch, state.batch_in_epoch);
    for (size_t t = 0; t < task_count; ++t) cursors[t].drawn = drawn[t];
    return static_cast<int64_t>(order.size());
  };
  steps.train_batch = [&](int64_t epoch, int64_t b, std::vector<double>& step_loss) {
    const size_t t = order[static_cast<size_t>(b)];
    activate(t);
    const std::vector<size_t>& global_rows = next_rows(t);
    // In a group, this process's slice of the global batch.
    const std::vector<size_t> rows =
        group ? detail::share_of(global_rows, group->rank(), group->world_size()) : global_rows;
    const double share = static_cast<double>(rows.size()) / static_cast<double>(global_rows.size());
    if (!rows.empty()) {
      // In a group of several, this process's own dropout masks (data_parallel.h).
      const auto dropout_stream =
          detail::own_dropout_stream(group, device, options_.seed, epoch, b);
      Batch batch = batchers[t].make_batch(rows).to(device);
      torch::Tensor loss;
      {
        const AutocastGuard autocast = engine.autocast();
        torch::Tensor logits;
        if (frozen_layers > 0) {
          logits = model_->forward_from(layer_cache[t].lower_states(*model_->bert, batch),
                                        batch.attention_mask, frozen_layers);
        } else {
          logits = model_(batch.input_ids, batch.attention_mask, batch.token_type_ids);
        }
        loss = model_->loss(logits, batch.labels);
      }
      // The mean over the global batch, of which this process holds `share`.
      engine.backward(detail::training_objective(*model_->bert, tasks_[t].adapter, loss), share);
      step_loss[t] += loss.item<double>() * share;
    }
    ++window_task_batches[t];
    return static_cast<int64_t>(global_rows.size());
  };
  steps.evaluate = run_eval;
  steps.save_checkpoint = save_checkpoint;
  steps.stepped = [&](const std::vector<double>& step_loss) {
    for (size_t i = 0; i < task_count; ++i) window_task_loss[i] += step_loss[i];
  };
  steps.log = [&](Json& event) {
    if (several) {
      // Each task's mean loss over the window (tasks without a batch in it are left out).
      Json task_loss = Json::object();
      for (size_t i = 0; i < task_count; ++i) {
        if (window_task_batches[i] > 0) {
          task_loss[*tasks_[i].adapter] =
              window_task_loss[i] / static_cast<double>(window_task_batches[i]);
        }
      }
      event["task_loss"] = task_loss;
    }
    write_event(event);
    std::fill(window_task_loss.begin(), window_task_loss.end(), 0.0);
    std::fill(window_task_batches.begin(), window_task_batches.end(), 0);
  };
  detail::run_fine_tuning_loop(engine, options_, group, epochs, total_steps, task_count, steps,
                               progress, result);
  for (size_t t = 0; t < task_count; ++t) {
    result.batches_from_cache += layer_cache[t].batches_from_cache();
    result.eval_batches_from_cache += dev_cache[t].batches_from_cache();
  }
  const std::vector<int64_t> drawn = sampler.drawn_before(state.epoch, state.batch_in_epoch);
  Json tasks_summary = Json::array();
  for (size_t t = 0; t < task_count; ++t) {
    TaskTrainResult task;
    task.task = tasks_[t].info.name;
    task.adapter = tasks_[t].adapter;
    task.best_metrics = progress_of[t].best_metrics;
    task.best_step = progress_of[t].best_step;
    task.batches = drawn[t];
    task.best_model = detail::kept_best_model(best_directory(t), task.best_step);
    tasks_summary.push_back({{"task", task.task},
                             {"adapter", task.adapter ? Json(*task.adapter) : Json(nullptr)},
                             {"best_step", task.best_step},
                             {"best_metrics", task.best_metrics},
                             {"batches", task.batches},
                             {"best_model", task.best_model ? Json(*task.best_model) : Json()}});
    result.tasks.push_back(std::move(task));
  }
  if (!several) {
    result.best_metrics = result.tasks[0].best_metrics;
    result.best_step = result.tasks[0].best_step;
    result.best_model = result.tasks[0].best_model;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string names;
  for (size_t t = 0; t < task_count; ++t) names += (t ? "," : "") + tasks_[t].info.name;
  Json summary = {{"task", names}};
  if (!several) {
    summary["best_step"] = result.best_step;
    summary["best_metrics"] = result.best_metrics;
  }
  summary["steps"] = result.steps;
  summary["skipped_steps"] = result.skipped_steps;
  summary["interrupted"] = result.interrupted;
  summary["early_stopped"] = result.early_stopped;
  summary["seconds"] = result.seconds;
  summary["cached_layers"] = result.cached_layers;
  summary["batches_from_cache"] = result.batches_from_cache;
  summary["eval_batches_from_cache"] = result.eval_batches_from_cache;
  summary["tasks"] = tasks_summary;
  if (writes)
    write_file_atomic(options_.output_dir + "/results.json", json_text(summary, 2) + "\n");
  return result;
}

}  // namespace adaptertune
