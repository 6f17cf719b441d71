#include "adaptertune/training/question_answering_trainer.h"

#include <algorithm>
#include <chrono>
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
#include "adaptertune/fusion_config.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/directory_lock.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/output_directory.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/tasks/batcher.h"
#include "adaptertune/training/training_engine.h"
#include "adaptertune/version.h"
#include "distributed/squad_windows.h"
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

// What a checkpoint's position means only together with: the windows and how they are batched.
Json squad_fingerprint(const SquadFeatures& features, const EncodedDataset& windows,
                       const TrainerOptions& options, const SquadFeatureOptions& shape) {
  std::vector<int64_t> targets;
  for (const SquadFeature& f : features.features) {
    targets.push_back(f.start_position);
    targets.push_back(f.end_position);
  }
  detail::Sha256 sha;
  sha.update(targets.data(), targets.size() * sizeof(targets[0]));
  return {{"train_windows", windows.encodings.size()},
          {"batch_size", options.batch_size},
          {"gradient_accumulation", options.gradient_accumulation},
          {"group_by_length", options.group_by_length},
          {"max_length", shape.max_length},
          {"doc_stride", shape.stride()},
          {"max_query_length", shape.query_length()},
          {"train_sha256", detail::encodings_sha256(windows.encodings)},
          {"targets_sha256", sha.hex_digest()}};
}

// The answers with their scores, as the official scripts score them.
SquadEvalResult scored(const SquadDataset& data,
                       std::map<std::string, SquadAnswerPrediction> answers) {
  SquadEvalResult result;
  result.answers = std::move(answers);
  std::map<std::string, std::string> predictions;
  for (const auto& [id, answer] : result.answers) predictions[id] = answer.text;
  const SquadScores scores = squad_evaluate(data, predictions);
  result.metrics = {{"exact", scores.exact}, {"f1", scores.f1}};
  if (data.v2) {
    result.metrics["has_answer_exact"] = scores.has_answer_exact;
    result.metrics["has_answer_f1"] = scores.has_answer_f1;
    result.metrics["no_answer_exact"] = scores.no_answer_exact;
    result.metrics["no_answer_f1"] = scores.no_answer_f1;
  }
  return result;
}

}  // namespace

std::map<std::string, SquadAnswerPrediction> predict_squad(
    BertForQuestionAnswering& model, const SquadDataset& data, const Tokenizer& tokenizer,
    const QuestionAnsweringOptions& options, int64_t batch_size, c10::Device device,
    Precision precision, ProcessGroup* group) {
  return predict_squad(model, data, make_squad_features(data, tokenizer, options.features),
                       tokenizer, options.answers, batch_size, device, precision, group);
}

std::map<std::string, SquadAnswerPrediction> predict_squad(
    BertForQuestionAnswering& model, const SquadDataset& data, const SquadFeatures& features,
    const Tokenizer& tokenizer, const SquadAnswerOptions& answers, int64_t batch_size,
    c10::Device device, Precision precision, ProcessGroup* group) {
  return detail::predict_squad_cached(model, data, features, tokenizer, answers, batch_size, device,
                                      precision, group, nullptr);
}

std::map<std::string, SquadAnswerPrediction> detail::predict_squad_cached(
    BertForQuestionAnswering& model, const SquadDataset& data, const SquadFeatures& features,
    const Tokenizer& tokenizer, const SquadAnswerOptions& answers, int64_t batch_size,
    c10::Device device, Precision precision, ProcessGroup* group, FrozenLayerCache* cache) {
  check_device(device);
  move_to_device(*model, device);  // the batches go there; a model loaded elsewhere follows
  const bool was_training = model->is_training();
  model->eval();
  c10::InferenceMode inference;  // nothing computed here is ever differentiated
  auto answers_found = detail::answer_squad_windows(
      data, features, tokenizer, answers.for_data(data), batch_size, device, group,
      [&](const Batch& batch) {
        AutocastGuard autocast(device, precision);
        return cache != nullptr
                   ? model->forward_from(cache->lower_states(*model->bert, batch),
                                         batch.attention_mask, cache->layers())
                   : model(batch.input_ids, batch.attention_mask, batch.token_type_ids);
      });
  model->train(was_training);
  return answers_found;
}

SquadEvalResult evaluate_squad(BertForQuestionAnswering& model, const SquadDataset& data,
                               const Tokenizer& tokenizer, const QuestionAnsweringOptions& options,
                               int64_t batch_size, c10::Device device, Precision precision,
                               ProcessGroup* group) {
  return evaluate_squad(model, data, make_squad_features(data, tokenizer, options.features),
                        tokenizer, options.answers, batch_size, device, precision, group);
}

SquadEvalResult evaluate_squad(BertForQuestionAnswering& model, const SquadDataset& data,
                               const SquadFeatures& features, const Tokenizer& tokenizer,
                               const SquadAnswerOptions& answers, int64_t batch_size,
                               c10::Device device, Precision precision, ProcessGroup* group) {
  return scored(data, predict_squad(model, data, features, tokenizer, answers, batch_size, device,
                                    precision, group));
}

QuestionAnsweringTrainer::QuestionAnsweringTrainer(
    BertForQuestionAnswering& model, SquadDataset train, SquadDataset dev, FreezePolicy policy,
    std::optional<std::string> adapter, TrainerOptions options, QuestionAnsweringOptions qa,
    const Tokenizer& tokenizer, std::vector<std::string> stacked_on)
    : model_(model),
      train_data_(std::move(train)),
      dev_data_(std::move(dev)),
      policy_(policy),
      adapter_(std::move(adapter)),
      stacked_on_(std::move(stacked_on)),
      options_(std::move(options)),
      qa_(qa),
      tokenizer_(tokenizer) {
  Trainer::check_options(options_);
  qa_.features.validate();
  const std::string label = "QuestionAnsweringTrainer: ";
  if (options_.process_group && options_.batch_size < options_.process_group->world_size()) {
    throw Error(label + "batch_size " + std::to_string(options_.batch_size) +
                " is the global batch, shared out among the " +
                std::to_string(options_.process_group->world_size()) +
                " processes: it must be at least that many");
  }
  if (options_.sampling_temperature != 1.0) {
    throw Error(label + "sampling_temperature interleaves several tasks; a span run has one");
  }
  if (options_.last_layer_first_position) {
    throw Error(label + "last_layer_first_position: spans are read from every position");
  }
  if (train_data_.examples.empty()) throw Error(label + "the training data has no questions");
  if (dev_data_.examples.empty()) throw Error(label + "the dev data has no questions");
  for (const SquadExample& example : train_data_.examples) {
    if (example.answers.empty() && !example.is_impossible) {
      throw Error(label + train_data_.path + ": question \"" + example.id +
                  "\" has no answer and is not marked is_impossible: training needs an answer");
    }
  }
  policy_.check_fits(model_->bert->config().num_hidden_layers);
  if (options_.cache_frozen_layers) detail::adapter_free_layers(*model_->bert, adapter_);
  if (adapter_) {
    model_->bert->adapter_config(*adapter_);  // throws when the model has no such adapter
    check_policy_trains_adapter(policy_, *adapter_);
  } else if (policy_.trains(ParameterGroup::kAdapter) && policy_.mode != TrainMode::kFull) {
    throw Error(label + "training mode \"" + policy_.name() + "\" needs an adapter to train");
  }
  detail::check_stacked_on(
      *model_->bert, adapter_, stacked_on_,
      adapter_ ? std::vector<std::string>{*adapter_} : std::vector<std::string>{},
      "QuestionAnsweringTrainer");
  if (options_.max_length > 0 && options_.max_length != qa_.features.max_length) {
    throw Error(label + "max_length " + std::to_string(options_.max_length) +
                " differs from the windows' max_length " + std::to_string(qa_.features.max_length) +
                " (set one, or both alike)");
  }
  options_.max_length = qa_.features.max_length;
  model_->bert->config().check_sequence_length(qa_.features.max_length, "max_length");
}

TrainResult QuestionAnsweringTrainer::train() {
  const auto start = std::chrono::steady_clock::now();
  const c10::Device device = options_.device;
  check_device(device);
  Trainer::check_options(options_);  // the directory may have changed since the constructor
  ProcessGroup* const group = options_.process_group.get();
  // Rank 0 writes the run directory; the other processes of a group write nothing (as in
  // Trainer::train()).
  const bool writes = is_main_process(group);
  std::optional<DirectoryLock> lock;
  if (writes) {
    lock.emplace(options_.output_dir, "run directory");
    if (options_.overwrite) clear_output_directory(detail::run_directory(options_.output_dir));
  }
  torch::manual_seed(options_.seed);
  move_to_device(*model_, device);
  model_->train();
  if (adapter_) {
    prepare_task_training(*model_, *adapter_, policy_);
    model_->bert->set_active_stack(Stack::on_top_of(stacked_on_, *adapter_));
  } else {
    model_->bert->set_active_adapter(std::nullopt);
    apply_freeze_policy(*model_, policy_);
  }

  const SquadFeatures features = make_squad_features(train_data_, tokenizer_, qa_.features);
  // The dev windows once for the run, not at every evaluation.
  const SquadFeatures dev_features = make_squad_features(dev_data_, tokenizer_, qa_.features);
  const EncodedDataset windows = detail::encoded_windows(features);
  BatcherOptions batching;
  batching.batch_size = options_.batch_size;
  batching.group_by_length = options_.group_by_length;
  batching.seed = options_.seed;
  batching.pad_id = tokenizer_.pad_id();
  Batcher batcher(windows, batching);
  const int64_t batches = batcher.batches_per_epoch();
  const int64_t steps_per_epoch =
      (batches + options_.gradient_accumulation - 1) / options_.gradient_accumulation;
  const int64_t total_steps =
      options_.max_steps > 0 ? options_.max_steps : steps_per_epoch * options_.epochs;
  const int64_t epochs = (total_steps + steps_per_epoch - 1) / steps_per_epoch;
  detail::apply_recompute_options(options_, *model_->bert->encoder);
  TrainingEngine engine(*model_, options_.engine_options(total_steps));
  TrainingState& state = engine.state();
  Json data_fingerprint = squad_fingerprint(features, windows, options_, qa_.features);
  // A resume under another stack would train on other inputs (absent: no stack, as before).
  if (!stacked_on_.empty()) data_fingerprint["stacked_on"] = stacked_on_;
  const std::string fingerprint = json_text(data_fingerprint);
  // The options, recorded with every checkpoint; a resume says which changed since its steps.
  // The windows' options are in the fingerprint (other windows are other data); the answers'
  // change only what dev evaluation scores, so a resume may change them and says so.
  const Json answer_options = {{"n_best", qa_.answers.n_best},
                               {"max_answer_length", qa_.answers.max_answer_length},
                               {"null_score_threshold", qa_.answers.null_score_threshold}};
  detail::ResumeRecord record(options_, answer_options);
  if (adapter_) record.adapters[*adapter_] = detail::task_configs_json(*model_->bert, adapter_);

  TrainResult result;
  detail::TaskProgress best;
  detail::Progress progress(options_.progress && writes);
  // AdapterDrop's cache of the frozen lowest layers' outputs per window, kept at the longest
  // window's length: the span loss reads padded positions too, and their states after the cached
  // layers depend on the window alone, not on the batch it is padded in.
  // The dev windows' rows for the evaluations are kept without their padding: an answer reads
  // its window's own positions only.
  detail::FrozenLayerCache layer_cache, dev_cache;
  if (options_.cache_frozen_layers) {
    size_t longest = 0;
    for (const Encoding& e : windows.encodings) longest = std::max(longest, e.input_ids.size());
    int64_t dev_tokens = 0;
    for (const SquadFeature& f : dev_features.features) {
      dev_tokens += static_cast<int64_t>(f.encoding.input_ids.size());
    }
    const detail::FrozenLayerCachePlan plan = detail::plan_frozen_layer_caches(
        detail::adapter_free_layers(*model_->bert, adapter_),
        static_cast<int64_t>(windows.encodings.size() * longest), dev_tokens,
        model_->bert->config().hidden_size, options_.cache_max_bytes);
    if (!plan.message.empty()) progress.message("train: " + plan.message);
    layer_cache = detail::FrozenLayerCache(plan.training, windows.encodings.size(),
                                           static_cast<int64_t>(longest), tokenizer_.pad_id());
    dev_cache = detail::FrozenLayerCache(plan.dev, dev_features.features.size());
    result.cached_layers = plan.training;
  }
  // The base as the run starts, before a resume restores trained weights into it.
  const Json base =
      writes ? detail::base_json(options_, *model_, model_->bert->config()) : Json(nullptr);
  if (options_.resume) {
    detail::resume_run(engine, options_, batches, writes, fingerprint, record, progress,
                       [&](const Json& extra, const std::string& path, int64_t step) {
                         best = detail::read_task_progress(extra, path, "extra", step);
                       });
  }

  // Every process starts from rank 0's tensors, as one model.
  if (group) group->broadcast(engine.trainable());
  std::optional<detail::MetricsLog> metrics_log;
  // Rank 0 alone describes the run (the other processes never write it).
  if (writes) {
    const Json configs = detail::task_configs_json(*model_->bert, adapter_);
    // The windows' options; the answers' are under "options" with the trainer's (record.options).
    const Json squad_options = {{"doc_stride", qa_.features.stride()},
                                {"max_query_length", qa_.features.query_length()}};
    const Json run = {
        {"library_version", version()},
        {"torch_version", TORCH_VERSION},
        {"task", "squad"},
        {"squad_version", train_data_.v2 ? "v2.0" : "v1.1"},
        {"train_examples", train_data_.examples.size()},
        {"train_windows", windows.encodings.size()},
        {"dev_examples", dev_data_.examples.size()},
        {"train_mode", policy_.name()},
        {"adapter", adapter_ ? Json(*adapter_) : Json(nullptr)},
        {"stacked_on", stacked_on_},
        {"adapter_config", configs["adapter_config"]},
        {"fusion_config", configs["fusion_config"]},
        {"model_config", Json::parse(model_->bert->config().to_json_string())},
        {"base", base},
        {"options", record.options},
        {"resumes", record.history(options_.output_dir, state.global_step)},
        {"squad", squad_options},
        {"parameters", Json::parse(parameter_report(*model_, adapter_).to_json_string())},
        {"machine", detail::machine_json()},
        {"total_steps", total_steps}};
    write_file_atomic(options_.output_dir + "/run.json", json_text(run, 2) + "\n");
    metrics_log.emplace(
        detail::open_metrics_log(options_.output_dir, record.resumed, state.global_step));
  }
  auto write_event = [&](const Json& event) {
    if (metrics_log) metrics_log->write(event);
  };
  if (record.resumed) write_event(record.event(state.global_step));

  const std::string best_dir = options_.output_dir + "/best";
  auto save_checkpoint = [&] {
    if (!writes) return;
    engine.save_checkpoint(fingerprint,
                           json_text(record.stamped(detail::task_progress_json(best))));
  };
  // The windows and answers as evaluate_squad() picked the best model: no answer where the dev
  // data allows one. The pack or the model directory records them, so that it runs so.
  QuestionAnsweringOptions recorded = qa_;
  recorded.answers = qa_.answers.for_data(dev_data_);
  auto save_best = [&] {
    const std::string temp = detail::empty_best_staging(options_.output_dir);
    if (adapter_) {
      AdapterPackOptions pack;
      pack.train_mode = policy_.name();
      pack.max_length = qa_.features.max_length;
      pack.precision = options_.precision;
      pack.stacked_on = stacked_on_;
      pack.question_answering = recorded;
      save_adapter_pack(model_, *adapter_, temp, pack);
    } else {
      save_pretrained(*model_, temp);
      save_tokenizer(tokenizer_, temp, qa_.features.max_length);
      write_model_directory_record(temp, {qa_.features.max_length, recorded, options_.precision});
    }
    detail::move_best_into_place(options_.output_dir, best_dir);
  };
  // Evaluates on dev; true when training should stop early.
  auto run_eval = [&](int64_t epoch) {
    const auto eval_start = std::chrono::steady_clock::now();
    const SquadEvalResult eval = scored(
        dev_data_,
        detail::predict_squad_cached(model_, dev_data_, dev_features, tokenizer_, qa_.answers,
                                     options_.eval_batch_size, device, options_.precision, group,
                                     dev_cache.layers() > 0 ? &dev_cache : nullptr));
    const double score = eval.metrics.at("f1");
    const bool improved = score > best.best;
    write_event(
        {{"event", "eval"},
         {"step", state.global_step},
         {"epoch", epoch + 1},
         {"task", "squad"},
         {"adapter", adapter_ ? Json(*adapter_) : Json(nullptr)},
         {"metrics", eval.metrics},
         {"improved", improved},
         {"eval_s",
          std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count()},
         {"elapsed_s",
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}});
    progress.message("eval: step " + std::to_string(state.global_step) + " dev " +
                     detail::metrics_text(eval.metrics) + (improved ? " (best)" : ""));
    if (improved) {
      best.best = score;
      best.best_step = state.global_step;
      best.best_metrics = eval.metrics;
      best.evals_without_improvement = 0;
      if (writes) save_best();
    } else {
      ++best.evals_without_improvement;
    }
    const bool stop = options_.early_stopping_patience > 0 &&
                      best.evals_without_improvement >= options_.early_stopping_patience;
    return group ? detail::rank0_decision(*group, stop, device) : stop;
  };

  std::vector<std::vector<size_t>> order;  // the epoch's batches
  detail::FineTuningSteps steps;
  steps.begin_epoch = [&](int64_t epoch) {
    order = batcher.epoch_order(epoch);
    return static_cast<int64_t>(order.size());
  };
  steps.train_batch = [&](int64_t epoch, int64_t b, std::vector<double>& step_loss) {
    const std::vector<size_t>& global_rows = order[static_cast<size_t>(b)];
    Batch batch = batcher.make_batch(global_rows);
    if (group) {
      // This process's slice of the global batch, padded as the whole batch is: the span loss
      // reads every position, padding included, so a slice padded to its own longest window
      // would score its rows otherwise than one process does.
      const auto [first, last] =
          detail::share_range(global_rows.size(), group->rank(), group->world_size());
      batch = batch.slice(static_cast<int64_t>(first), static_cast<int64_t>(last));
    }
    const std::vector<size_t> rows = batch.rows;
    const double share = static_cast<double>(rows.size()) / static_cast<double>(global_rows.size());
    if (!rows.empty()) {
      // In a group of several, this process's own dropout masks (data_parallel.h).
      const auto dropout_stream =
          detail::own_dropout_stream(group, device, options_.seed, epoch, b);
      batch = batch.to(device);
      std::vector<int64_t> start_positions, end_positions;
      for (size_t row : rows) {
        start_positions.push_back(features.features[row].start_position);
        end_positions.push_back(features.features[row].end_position);
      }
      torch::Tensor loss;
      {
        const AutocastGuard autocast = engine.autocast();
        const torch::Tensor logits =
            layer_cache.layers() > 0
                ? model_->forward_from(layer_cache.lower_states(*model_->bert, batch),
                                       batch.attention_mask, layer_cache.layers())
                : model_(batch.input_ids, batch.attention_mask, batch.token_type_ids);
        loss = model_->loss(logits, at::tensor(start_positions).to(device),
                            at::tensor(end_positions).to(device));
      }
      // The mean over the global batch, of which this process holds `share`.
      engine.backward(detail::training_objective(*model_->bert, adapter_, loss), share);
      step_loss[0] += loss.item<double>() * share;
    }
    return static_cast<int64_t>(global_rows.size());
  };
  steps.evaluate = run_eval;
  steps.save_checkpoint = save_checkpoint;
  steps.log = write_event;
  detail::run_fine_tuning_loop(engine, options_, group, epochs, total_steps, 1, steps, progress,
                               result);
  result.batches_from_cache = layer_cache.batches_from_cache();
  result.eval_batches_from_cache = dev_cache.batches_from_cache();
  result.best_metrics = best.best_metrics;
  result.best_step = best.best_step;
  result.best_model = detail::kept_best_model(best_dir, best.best_step);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  TaskTrainResult task;
  task.task = "squad";
  task.adapter = adapter_;
  task.best_metrics = result.best_metrics;
  task.best_step = result.best_step;
  task.batches = state.epoch * batches + state.batch_in_epoch;
  task.best_model = result.best_model;
  result.tasks.push_back(task);
  const Json summary = {{"task", "squad"},
                        {"best_step", result.best_step},
                        {"best_metrics", result.best_metrics},
                        {"steps", result.steps},
                        {"skipped_steps", result.skipped_steps},
                        {"interrupted", result.interrupted},
                        {"early_stopped", result.early_stopped},
                        {"seconds", result.seconds},
                        {"cached_layers", result.cached_layers},
                        {"batches_from_cache", result.batches_from_cache},
                        {"eval_batches_from_cache", result.eval_batches_from_cache},
                        {"best_model", result.best_model ? Json(*result.best_model) : Json()}};
  if (writes)
    write_file_atomic(options_.output_dir + "/results.json", json_text(summary, 2) + "\n");
  return result;
}

}  // namespace adaptertune
