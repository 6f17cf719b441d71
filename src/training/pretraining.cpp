#include "adaptertune/training/pretraining.h"

#include <chrono>
#include <cmath>
#include <random>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>
#include <nlohmann/json.hpp>

#include "adaptertune/bert_for_masked_lm.h"
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
#include "adaptertune/precision.h"
#include "adaptertune/tasks/batcher.h"
#include "adaptertune/training/checkpoint.h"
#include "adaptertune/training/freeze_policy.h"
#include "adaptertune/training/interrupt.h"
#include "adaptertune/training/optimizer.h"
#include "adaptertune/training/scheduler.h"
#include "adaptertune/training/training_engine.h"
#include "distributed/shared_batches.h"
#include "dropout.h"
#include "generator_state.h"
#include "json_util.h"
#include "run_checks.h"
#include "run_files.h"
#include "training/data_parallel.h"

namespace adaptertune {

std::pair<at::Tensor, at::Tensor> mask_for_mlm(const at::Tensor& input_ids,
                                               const Tokenizer& tokenizer,
                                               const MlmMaskingOptions& options) {
  at::Tensor ids = input_ids.to(at::kCPU).clone();
  const int64_t special[] = {tokenizer.cls_id(), tokenizer.sep_id(), tokenizer.pad_id()};
  at::Tensor candidates = at::ones_like(ids, at::kBool);
  for (int64_t s : special) candidates &= ids != s;
  at::Tensor chosen;
  if (options.whole_word_masking) {
    // A word starts at every token that is not a "##" continuation; a word is chosen as a whole.
    at::Tensor word_start = at::ones_like(ids, at::kBool);
    auto id = ids.accessor<int64_t, 2>();
    auto start = word_start.accessor<bool, 2>();
    for (int64_t b = 0; b < ids.size(0); ++b) {
      for (int64_t t = 0; t < ids.size(1); ++t) {
        start[b][t] = tokenizer.id_to_token(id[b][t]).rfind("##", 0) != 0;
      }
    }
    at::Tensor pick = (at::rand(ids.sizes()) < options.mask_probability) & word_start;
    // Spread each word's draw over its continuation tokens.
    chosen = at::zeros_like(ids, at::kBool);
    auto p = pick.accessor<bool, 2>();
    auto c = chosen.accessor<bool, 2>();
    for (int64_t b = 0; b < ids.size(0); ++b) {
      bool current = false;
      for (int64_t t = 0; t < ids.size(1); ++t) {
        if (start[b][t]) current = p[b][t];
        c[b][t] = current;
      }
    }
    chosen &= candidates;
  } else {
    chosen = (at::rand(ids.sizes()) < options.mask_probability) & candidates;
  }
  at::Tensor labels = at::where(chosen, ids, at::full_like(ids, -100));
  at::Tensor draw = at::rand(ids.sizes());
  at::Tensor to_mask = chosen & (draw < 0.8);
  at::Tensor to_random = chosen & (draw >= 0.8) & (draw < 0.9);
  ids.masked_fill_(to_mask, tokenizer.mask_id());
  at::Tensor random_ids = at::randint(tokenizer.vocab_size(), ids.sizes(), at::kLong);
  ids = at::where(to_random, random_ids, ids);
  return {ids, labels};
}

std::vector<Encoding> pack_sentences(const std::vector<std::string>& lines,
                                     const Tokenizer& tokenizer, int64_t max_length,
                                     const std::function<std::string(size_t)>& line_source) {
  if (max_length < 3) throw Error("pack_sentences: max_length must be at least 3");
  std::vector<Encoding> out;
  Encoding current;
  auto flush = [&] {
    if (current.input_ids.empty()) return;
    current.attention_mask.assign(current.input_ids.size(), 1);
    out.push_back(std::move(current));
    current = Encoding{};
  };
  for (size_t index = 0; index < lines.size(); ++index) {
    std::vector<std::string> tokens;
    try {
      tokens = tokenizer.tokenize(lines[index]);
    } catch (const Error& e) {
      throw Error((line_source ? line_source(index)
                               : "line " + std::to_string(index + 1) + " of the text") +
                  ": " + e.what());
    }
    if (tokens.empty()) continue;
    if (static_cast<int64_t>(tokens.size()) > max_length - 2)
      tokens.resize(static_cast<size_t>(max_length - 2));
    const auto needed = static_cast<int64_t>(tokens.size()) + (current.input_ids.empty() ? 2 : 1);
    if (static_cast<int64_t>(current.input_ids.size()) + needed > max_length) flush();
    if (current.input_ids.empty()) {
      current.input_ids.push_back(tokenizer.cls_id());
      current.tokens.push_back(tokenizer.id_to_token(tokenizer.cls_id()));
    }
    for (auto& t : tokens) {
      current.input_ids.push_back(tokenizer.token_to_id(t));
      current.tokens.push_back(std::move(t));
    }
    current.input_ids.push_back(tokenizer.sep_id());
    current.tokens.push_back(tokenizer.id_to_token(tokenizer.sep_id()));
  }
  flush();
  for (auto& e : out) e.token_type_ids.assign(e.input_ids.size(), 0);
  return out;
}

namespace {

OutputDirectory model_directory(const std::string& path) {
  // What save_pretrained() and save_tokenizer() write, the default checkpoint folder, the run's
  // metrics.jsonl and the log that the pretraining recipe keeps beside the model. A model's
  // licence and readme (as a Hugging Face repository and the shipped base have them) stay where
  // they are.
  return {path,
          "model directory",
          {"config.json", "model.safetensors", "vocab.txt", "spiece.model", "tokenizer_config.json",
           "checkpoints", "metrics.jsonl", "pretrain.log"},
          {"README", "LICENSE", "LICENCE", "COPYING", "NOTICE", ".gitattributes"}};
}

// What must not change between a run and its resumption, as stored in the checkpoint: the
// options that shape the data order, a hash of the packed token ids, and the
// identity of the model a continuation started from (null for a run from random weights, which
// is also what a checkpoint from before the key was recorded compares as).
nlohmann::json resume_fingerprint(const PretrainOptions& options,
                                  const std::vector<Encoding>& sequences,
                                  const std::string& init_weights_sha256) {
  return {{"init_from_weights",
           init_weights_sha256.empty() ? nlohmann::json() : nlohmann::json(init_weights_sha256)},
          {"batch_size", options.batch_size},
          {"gradient_accumulation", options.gradient_accumulation},
          {"max_length", options.max_length},
          {"seed", options.seed},
          {"whole_word_masking", options.masking.whole_word_masking},
          {"mask_probability", options.masking.mask_probability},
          {"packed_sequences", sequences.size()},
          {"text_sha256", detail::encodings_sha256(sequences)}};
}

// Held-out sequences with their masking (`eval_masking`, not the training's) drawn once from
// `eval_seed`, without touching the training's random numbers.
struct HeldOut {
  std::vector<at::Tensor> inputs, labels, masks;
};

HeldOut mask_held_out(const std::vector<std::string>& lines, const Tokenizer& tokenizer,
                      const PretrainOptions& options) {
  HeldOut out;
  EncodedDataset data;
  data.encodings = pack_sentences(lines, tokenizer, options.max_length, [](size_t index) {
    return "line " + std::to_string(index + 1) + " of the held-out text";
  });
  if (data.encodings.empty()) throw Error("pretrain: the held-out text holds no tokens");
  BatcherOptions batching;
  batching.batch_size = options.batch_size;
  batching.shuffle = false;
  batching.pad_id = tokenizer.pad_id();
  Batcher batcher(data, batching);
  detail::GeneratorState training(at::detail::getDefaultCPUGenerator());
  torch::manual_seed(options.eval_seed);
  for (const auto& rows : batcher.epoch_order(0)) {
    Batch batch = batcher.make_batch(rows);
    auto [masked, labels] = mask_for_mlm(batch.input_ids, tokenizer, options.eval_masking);
    out.inputs.push_back(masked);
    out.labels.push_back(labels);
    out.masks.push_back(batch.attention_mask);
  }
  training.put_back();
  return out;
}

// The masked-LM loss per masked token over the held-out batches (eval mode, no gradients). In a
// group each process measures every world_size-th batch, and the sums are all-reduced.
double held_out_loss(BertForMaskedLM& model, const HeldOut& held_out, c10::Device device,
                     Precision precision, ProcessGroup* group) {
  const bool was_training = model->is_training();
  model->eval();
  c10::InferenceMode inference;  // nothing computed here is ever differentiated
  double sum = 0;
  int64_t tokens = 0;
  for (size_t b = 0; b < held_out.inputs.size(); ++b) {
    if (!detail::evaluates_batch(b, group)) continue;
    const int64_t masked = (held_out.labels[b] != -100).sum().item<int64_t>();
    if (masked == 0) continue;
    AutocastGuard autocast(device, precision);
    const at::Tensor& mask = held_out.masks[b];
    const double loss = model
                            ->loss(held_out.inputs[b].to(device), held_out.labels[b].to(device),
                                   mask.defined() ? mask.to(device) : at::Tensor())
                            .item<double>();
    sum += loss * static_cast<double>(masked);
    tokens += masked;
  }
  model->train(was_training);
  if (group) {
    at::Tensor totals = at::tensor({sum, static_cast<double>(tokens)}, at::kDouble).to(device);
    group->all_reduce_sum({totals});
    totals = totals.cpu();
    sum = totals[0].item<double>();
    tokens = static_cast<int64_t>(totals[1].item<double>());
  }
  if (tokens == 0) throw Error("pretrain: the held-out text got no masked token");
  return sum / static_cast<double>(tokens);
}

// Continued pretraining needs the same shapes and the same computation; only the dropout and
// the initialisation range (unused: the weights come from the model) may differ.
void check_same_architecture(const BertConfig& config, const std::string& init_from) {
  const std::string path = init_from + "/config.json";
  BertConfig other = BertConfig::from_file(path);
  other.hidden_dropout_prob = config.hidden_dropout_prob;
  other.attention_probs_dropout_prob = config.attention_probs_dropout_prob;
  other.initializer_range = config.initializer_range;
  if (other != config) {
    throw Error(path +
                ": describes another architecture than the run's config (vocab_size, sizes, "
                "layers, heads, activation, positions or layer_norm_eps differ); continued "
                "pretraining needs the same one: give that file as the config");
  }
}

// The checkpoint directory that `branch_from` names: itself when it is a complete checkpoint,
// else the newest checkpoint of the run directory it is.
std::string branch_checkpoint(const std::string& branch_from) {
  if (optional_file_exists(branch_from + "/trainer_state.json")) return branch_from;
  if (const auto latest = CheckpointManager(branch_from).latest()) return *latest;
  throw Error(branch_from +
              ": holds no checkpoint to branch from (expected a checkpoint-<step> directory "
              "or a run's checkpoint directory)");
}

// Refuses a checkpoint whose learning rates so far this run's schedule would not repeat: the run
// would then continue a trajectory it never took. A checkpoint that predates recorded schedules
// must have been made for the same number of steps, as the fingerprint required then.
void check_schedule_continues(const TrainingState& saved, const std::string& path,
                              const LrSchedule& schedule) {
  if (schedule.total_steps < saved.global_step) {
    throw Error(path + ": the checkpoint is at step " + std::to_string(saved.global_step) +
                ", past this run's " + std::to_string(schedule.total_steps) + " steps");
  }
  const detail::Json recorded = detail::parse_json(saved.scheduler_json, path);
  if (!recorded.is_object() || recorded.empty()) {
    const detail::Json extra = detail::parse_json(saved.extra_json, path);
    const detail::Json steps = extra.contains("data") && extra["data"].contains("steps")
                                   ? extra["data"]["steps"]
                                   : detail::Json();
    if (steps != detail::Json(schedule.total_steps)) {
      throw Error(path + ": key 'extra': the checkpoint was made with steps " + json_text(steps) +
                  ", this run has " + std::to_string(schedule.total_steps) +
                  " (it records no schedule, so its steps cannot change)");
    }
    return;
  }
  const LrSchedule before = LrSchedule::from_json(saved.scheduler_json, path + " (scheduler)");
  // The rates of the updates made (a step that loss scaling dropped took none).
  const int64_t step = before.first_difference(schedule, saved.schedule_step());
  if (step >= 0) {
    std::ostringstream rates;
    rates << before.lr_at(step) << " where this run's (" << schedule.describe() << ") gives "
          << schedule.lr_at(step);
    throw Error(path + ": key 'scheduler': the checkpoint's schedule (" + before.describe() +
                ") gave step " + std::to_string(step) + " a learning rate of " + rates.str() +
                "; only a schedule that repeats the rates of the steps taken can continue it "
                "(constant, or wsd with --warmup-steps before its decay)");
  }
}

// Copies the model in `init_from` into `model`: every base tensor, and the masked-LM head where
// the directory has one. Returns a note for the user.
std::string load_initial_weights(BertForMaskedLM& model, const std::string& init_from) {
  LoadReport report = load_state_dict(*model, read_hf_weights(init_from), init_from);
  report.require_all_except(init_from, {ParameterGroup::kHead});
  return "pretrain: starting from the weights of " + init_from + " (" + report.summary() + ")" +
         (report.missing_any(ParameterGroup::kHead) ? "; the masked-LM head is new" : "");
}

}  // namespace

void PretrainOptions::validate() const {
  const char* owner = "PretrainOptions";
  check_precision(device, precision);
  detail::check_at_least(owner, "max_length", max_length, 3);  // [CLS], a token, [SEP]
  detail::check_at_least(owner, "batch_size", batch_size, 1);
  detail::check_at_least(owner, "steps", steps, 1);
  detail::check_finite(owner, "lr", lr, 0, /*exclusive=*/true);
  detail::check_fraction(owner, "warmup_ratio", warmup_ratio);
  detail::check_at_least(owner, "warmup_steps", warmup_steps, -1);
  detail::check_at_least(owner, "decay_steps", decay_steps, 0);
  // The schedule's own rules (warmup and decay within the steps), before anything is read.
  LrSchedule::make(schedule, lr, steps, warmup_ratio, warmup_steps, decay_steps);
  detail::check_finite(owner, "weight_decay", weight_decay, 0);
  detail::check_finite(owner, "max_grad_norm", max_grad_norm, 0);
  detail::check_at_least(owner, "gradient_accumulation", gradient_accumulation, 1);
  for (const auto& [name, value] :
       {std::pair{"mask_probability", masking.mask_probability},
        std::pair{"eval_masking.mask_probability", eval_masking.mask_probability}}) {
    if (!(value > 0 && value < 1)) {
      throw Error(std::string("PretrainOptions: ") + name + " must be in (0, 1), got " +
                  format_number(value));
    }
  }
  detail::check_at_least(owner, "log_every", log_every, 1);
  detail::check_at_least(owner, "eval_every", eval_every, 0);
  detail::check_at_least(owner, "stop_after_step", stop_after_step, 0);
  if (stop_after_step >= steps) {
    throw Error("PretrainOptions: stop_after_step must be less than steps (" +
                std::to_string(steps) + "), got " + std::to_string(stop_after_step) +
                "; a run that ends at its last step needs no stop");
  }
  detail::check_at_least(owner, "checkpoint_every", checkpoint_every, 0);
  detail::check_at_least(owner, "keep_checkpoints", keep_checkpoints, 1);
  if (process_group && batch_size < process_group->world_size()) {
    throw Error("PretrainOptions: batch_size " + std::to_string(batch_size) +
                " is the global batch and must be at least the group's " +
                std::to_string(process_group->world_size()) + " processes");
  }
  existing_output_mode(resume, overwrite);
}

void check_pretrain_options(const BertConfig& config, const std::string& output_dir,
                            const PretrainOptions& options) {
  options.validate();
  config.validate();
  config.check_sequence_length(options.max_length, "max_length");
  std::vector<std::string> inputs = options.inputs;
  if (!options.init_from.empty()) {
    // Replacing the model it starts from would delete its weights before they are read.
    inputs.push_back(options.init_from + "/config.json");
    inputs.push_back(options.init_from + "/model.safetensors");
    check_same_architecture(config, options.init_from);
  }
  // Replacing the run it branches from would delete the checkpoint before it is read.
  if (!options.branch_from.empty()) inputs.push_back(branch_checkpoint(options.branch_from));
  // Only rank 0 writes the output directory; the others never look at it before a resume.
  if (!is_main_process(options.process_group.get())) return;
  check_output_directory(model_directory(output_dir),
                         existing_output_mode(options.resume, options.overwrite), inputs);
  // Written only at the first checkpoint: found unusable then, the steps so far would be lost.
  if (!options.checkpoint_dir.empty()) {
    check_directory_can_be_made(options.checkpoint_dir, "checkpoint directory");
  }
}

PretrainResult pretrain_mlm(const BertConfig& config, const std::vector<std::string>& lines,
                            const Tokenizer& tokenizer, const std::string& output_dir,
                            const PretrainOptions& options) {
  if (tokenizer.vocab_size() != config.vocab_size) {
    throw Error("pretrain: the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                " tokens but the model config's vocab_size is " +
                std::to_string(config.vocab_size));
  }
  check_pretrain_options(config, output_dir, options);
  ProcessGroup* const group = options.process_group.get();
  // Rank 0 writes the model and checkpoint directories and reports; the others write nothing.
  const bool writes = is_main_process(group);
  EncodedDataset data;
  data.encodings = pack_sentences(lines, tokenizer, options.max_length, options.line_source);
  if (data.encodings.empty()) throw Error("pretrain: the text holds no tokens");
  torch::manual_seed(options.seed);
  const c10::Device device = options.device;
  check_device(device);
  BertForMaskedLM model(config);
  // Before the checkpoint (if resuming), which then replaces these weights.
  const std::string init_note =
      options.init_from.empty() ? "" : load_initial_weights(model, options.init_from);
  const std::string init_weights_sha256 =
      options.init_from.empty() ? "" : base_weights_sha256(*model, /*layer_norms=*/false);
  move_to_device(*model, device);
  model->train();
  model->bert->encoder->set_gradient_checkpointing(options.gradient_checkpointing);
  model->bert->encoder->set_recompute_attention_probabilities(
      options.recompute_attention_probabilities);
  apply_freeze_policy(*model, FreezePolicy::from_name("full"));
  BatcherOptions batching;
  batching.batch_size = options.batch_size;
  batching.seed = options.seed;
  batching.pad_id = tokenizer.pad_id();
  Batcher batcher(data, batching);

  const bool own_checkpoint_dir = options.checkpoint_dir.empty();
  TrainingEngineOptions engine_options;
  engine_options.lr = options.lr;
  engine_options.schedule = options.schedule;
  engine_options.warmup_ratio = options.warmup_ratio;
  engine_options.warmup_steps = options.warmup_steps;
  engine_options.decay_steps = options.decay_steps;
  engine_options.total_steps = options.steps;
  engine_options.weight_decay = options.weight_decay;
  engine_options.max_grad_norm = options.max_grad_norm;
  engine_options.gradient_accumulation = options.gradient_accumulation;
  engine_options.device = device;
  engine_options.precision = options.precision;
  engine_options.checkpoint_dir =
      own_checkpoint_dir ? output_dir + "/checkpoints" : options.checkpoint_dir;
  engine_options.keep_checkpoints = options.keep_checkpoints;
  engine_options.data_seed = options.seed;
  TrainingEngine engine(*model, engine_options);
  TrainingState& state = engine.state();
  const std::string fingerprint =
      json_text(resume_fingerprint(options, data.encodings, init_weights_sha256));
  auto message = [&](const std::string& text) {
    if (writes && options.on_message) options.on_message(text);
  };
  // Made here when missing (and removed again if the run is refused before it writes). Held until
  // the model is saved: a second run on this directory fails here instead of interleaving its
  // checkpoints with this one's.
  std::optional<DirectoryLock> lock;
  if (writes) {
    lock.emplace(output_dir, "model directory");
    if (options.overwrite) clear_output_directory(model_directory(output_dir));
  }
  DataShape shape;
  shape.batches_per_epoch = batcher.batches_per_epoch();
  shape.gradient_accumulation = options.gradient_accumulation;
  shape.data_seed = options.seed;
  shape.batches_may_skip_steps = true;  // a batch with nothing masked takes no step
  const auto check_schedule = [&](const TrainingState& saved, const std::string& path) {
    check_schedule_continues(saved, path, engine.schedule());
  };
  bool resumed = false;
  if (options.resume) {
    if (writes) engine.checkpoints().remove_stale_temporaries();
    if (const auto latest = engine.resume(shape, fingerprint, check_schedule)) {
      resumed = true;
      message("pretrain: resumed from " + *latest + " at step " +
              std::to_string(state.global_step));
    } else if (optional_file_exists(output_dir + "/config.json")) {
      throw Error(output_dir +
                  ": holds a finished model and no checkpoint to resume; replace it "
                  "with --overwrite");
    } else if (options.branch_from.empty()) {
      message("pretrain: resume asked for but no checkpoint in " + engine.checkpoints().root() +
              "; starting fresh");
    }
  }
  std::optional<std::string> branched_from;
  if (!resumed && !options.branch_from.empty()) {
    branched_from = branch_checkpoint(options.branch_from);
    engine.resume_from(*branched_from, shape, fingerprint, check_schedule);
    resumed = true;
    message("pretrain: branched from " + *branched_from + " at step " +
            std::to_string(state.global_step) + " (" + engine.schedule().describe() + ")");
  }
  if (options.stop_after_step > 0 && state.global_step >= options.stop_after_step) {
    throw Error("pretrain: stop_after_step " + std::to_string(options.stop_after_step) +
                ": the run " + (resumed ? "continues" : "starts") + " from step " +
                std::to_string(state.global_step) + ", which is not before it");
  }
  if (!init_note.empty() && !resumed) message(init_note);
  // Every process starts from rank 0's tensors, as one model.
  if (group) group->broadcast(engine.trainable());
  const HeldOut held_out = options.eval_lines.empty()
                               ? HeldOut{}
                               : mask_held_out(options.eval_lines, tokenizer, options);
  // metrics.jsonl beside the model: the log's numbers, one JSON object per event, for plots
  // across sittings. A resume keeps the events up to its checkpoint's step (those after it are
  // logged again as the run repeats them); a fresh start keeps none (an attempt that stopped
  // before its first checkpoint). Opened once nothing can refuse the run, which then leaves the
  // directory as it found it.
  std::optional<detail::MetricsLog> metrics_log;
  if (writes) {
    metrics_log.emplace(detail::open_metrics_log(output_dir, resumed, state.global_step));
    if (branched_from) {
      metrics_log->write(
          {{"event", "branch"}, {"step", state.global_step}, {"from", *branched_from}});
    } else if (resumed) {
      metrics_log->write({{"event", "resume"}, {"step", state.global_step}});
    }
  }
  PretrainResult result;
  auto measure = [&] {
    if (held_out.inputs.empty()) return;
    result.eval_loss = held_out_loss(model, held_out, device, options.precision, group);
    if (!writes) return;
    if (options.on_eval) options.on_eval(state.global_step, *result.eval_loss);
    metrics_log->write(
        {{"event", "eval"}, {"step", state.global_step}, {"held_out_loss", *result.eval_loss}});
  };
  // A continuation's starting point, on the held-out lines it will be compared on.
  if (!init_note.empty() && !resumed) measure();
  stop_requested() = false;
  double window_loss = 0;
  int64_t window = 0;
  detail::LogWindow throughput;  // sequences per second since the last logged step
  for (int64_t epoch = state.epoch; state.global_step < options.steps && !result.paused();
       ++epoch) {
    const auto order = batcher.epoch_order(epoch);
    // Batches with something masked since the last step; a step also ends with the epoch, as
    // in fine-tuning, so that a checkpoint's position is always an epoch and a batch in it.
    int64_t micro = 0;
    double step_loss = 0;
    for (auto b = static_cast<size_t>(state.batch_in_epoch); b < order.size(); ++b) {
      if (state.global_step >= options.steps) break;
      Batch batch = batcher.make_batch(order[b]);
      throughput.add_batch(static_cast<int64_t>(order[b].size()));
      auto [masked, labels] = mask_for_mlm(batch.input_ids, tokenizer, options.masking);
      state.epoch = epoch;
      state.batch_in_epoch = static_cast<int64_t>(b) + 1;
      const int64_t batch_masked = (labels != -100).sum().item<int64_t>();
      if (batch_masked > 0) {
        at::Tensor attention_mask = batch.attention_mask;
        // The global batch's mean loss per masked token, of which this process holds `share`.
        double share = 1;
        // On the CPU the processes share one stream and DropoutRows places each slice, so that a
        // group drops as one process does; at::dropout (other devices) cannot follow a slice's
        // place, so there each process draws its own.
        const int64_t stream = group && !device.is_cpu() ? group->rank() : 0;
        const detail::BatchDropoutStream dropout_stream(device, options.seed, epoch,
                                                        static_cast<int64_t>(b), stream);
        std::optional<DropoutRows> slice_rows;
        if (group) {
          const auto [first, last] = detail::share_range(static_cast<size_t>(masked.size(0)),
                                                         group->rank(), group->world_size());
          const auto begin = static_cast<int64_t>(first), end = static_cast<int64_t>(last);
          masked = masked.slice(0, begin, end);
          labels = labels.slice(0, begin, end);
          if (attention_mask.defined()) attention_mask = attention_mask.slice(0, begin, end);
          share = static_cast<double>((labels != -100).sum().item<int64_t>()) /
                  static_cast<double>(batch_masked);
          if (end > begin) slice_rows.emplace(begin, end - begin);
        }
        if (share > 0) {
          torch::Tensor loss;
          {
            const AutocastGuard autocast = engine.autocast();
            loss =
                model->loss(masked.to(device), labels.to(device),
                            attention_mask.defined() ? attention_mask.to(device) : torch::Tensor());
          }
          engine.backward(loss, share);
          step_loss += loss.item<double>() * share;
        }
        ++micro;
      }
      const bool last_batch = b + 1 == order.size();
      if (micro == 0 || (micro % options.gradient_accumulation != 0 && !last_batch)) continue;
      bool stop = false;
      if (group) {
        // One all-reduce: the gradients, the step's loss and the stop flag.
        std::vector<double> losses{step_loss};
        stop = detail::all_reduce_step(*group, engine.trainable(), losses);
        step_loss = losses[0];
      }
      const double lr = engine.step();
      window_loss += step_loss / static_cast<double>(micro);
      ++window;
      micro = 0;
      step_loss = 0;
      const int64_t step = state.global_step;
      if (options.on_step) options.on_step(step);
      if (step % options.log_every == 0 || step == options.steps) {
        result.final_loss = window_loss / static_cast<double>(window);
        if (writes) {
          PretrainLogEntry entry;
          entry.step = step;
          entry.epoch = epoch + 1;
          entry.loss = result.final_loss;
          entry.lr = lr;
          const detail::WindowRate sequences = throughput.rate();
          entry.examples_per_second = sequences.examples_per_second;
          entry.seconds_left = sequences.seconds_for(static_cast<double>(
              (options.steps - step) * options.batch_size * options.gradient_accumulation));
          if (state.loss_scale > 0) {
            entry.loss_scale = state.loss_scale;
            entry.skipped_steps = state.skipped_steps;
          }
          if (options.on_log) options.on_log(entry);
          nlohmann::ordered_json event = {
              {"event", "train"},   {"step", step}, {"epoch", entry.epoch},
              {"loss", entry.loss}, {"lr", lr},     {"examples_per_s", entry.examples_per_second}};
          detail::add_loss_scaling(event, state);
          metrics_log->write(event);
        }
        window_loss = 0;
        window = 0;
        throughput.reset();
      }
      if (step == options.steps || (options.eval_every > 0 && step % options.eval_every == 0)) {
        measure();
      }
      // Alone, a stop asked for during this step (or its evaluation) counts now; in a group,
      // every process learns of it in the next step's all-reduce, and all stop there together.
      result.interrupted = group ? stop : stop_requested().load();
      result.stopped = !result.interrupted && step == options.stop_after_step;
      if (result.paused() || (options.checkpoint_every > 0 &&
                              step % options.checkpoint_every == 0 && step < options.steps)) {
        if (writes) {
          const std::string saved = engine.save_checkpoint(fingerprint);
          if (result.paused()) {
            message(std::string("pretrain: ") +
                    (result.interrupted ? "interrupted"
                                        : "stopped after step " + std::to_string(step) +
                                              " as asked (stop_after_step)") +
                    "; checkpoint saved in " + saved + " (continue with --resume)");
          }
        }
        if (result.paused()) break;
      }
    }
    if (!result.paused() && state.global_step < options.steps) {
      state.epoch = epoch + 1;
      state.batch_in_epoch = 0;
    }
  }
  if (window > 0) result.final_loss = window_loss / static_cast<double>(window);
  result.steps = state.global_step;
  result.skipped_steps = state.skipped_steps;
  if (result.paused()) return result;
  if (!writes) {
    group->barrier();  // rank 0's, after it has written the model
    return result;
  }
  model->to(c10::Device(c10::kCPU));
  save_pretrained(*model, output_dir, options.save_dtype);
  save_tokenizer(tokenizer, output_dir, config.max_position_embeddings);
  // A finished run has nothing to resume; keep the model directory clean.
  if (own_checkpoint_dir) remove_tree(engine.checkpoints().root());
  // Once pretrain_mlm() returns on any process, the model is on disk.
  if (group) group->barrier();
  return result;
}

}  // namespace adaptertune
