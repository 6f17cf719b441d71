#include "training/run_files.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include "adaptertune/bert_model.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/layers/encoder.h"
#include "adaptertune/runtime.h"
#include "adaptertune/training/training_engine.h"
#include "json_integer.h"

namespace adaptertune::detail {
namespace {

using Json = nlohmann::ordered_json;

// The keys of an adapter's or a fusion's config that a resume may change: dropout, and how the
// weights that the checkpoint replaces were initialised.
const std::set<std::string> kMayChangeOnResume = {"dropout", "dropout_prob", "init_weights",
                                                  "init_std", "value_initialized"};

// `text` parsed, or a discarded value when it is no JSON or nests deeper than JSON from outside
// may (check_json_nesting()): what a reader that skips what it cannot use gets.
Json parsed_or_discarded(const std::string& text) {
  try {
    check_json_nesting(text, "");
  } catch (const Error&) {
    return Json(Json::value_t::discarded);
  }
  return Json::parse(text, nullptr, /*allow_exceptions=*/false);
}

// A best model on its way into place (move_best_into_place()).
constexpr const char* kBestStaging = ".best.tmp";
constexpr const char* kBestReplaced = ".best.old";

// The events of metrics.jsonl at `path` up to `step`, in place.
void cut_metrics_log(const std::string& path, int64_t step) {
  if (!optional_file_exists(path)) return;
  const std::string text = read_file(path);
  std::string kept;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a last line without its newline was torn
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    const Json event = parsed_or_discarded(line);
    const std::optional<int64_t> logged =
        event.is_object() && event.contains("step") ? integer_value(event["step"]) : std::nullopt;
    if (logged && *logged <= step) {
      kept += line + "\n";
    }
  }
  write_file_atomic(path, kept);
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path) : out_(path, std::ios::app) {
  if (!out_) throw Error(path + ": cannot open for appending");
}

void MetricsLog::write(const Json& event) {
  out_ << json_text(event) << std::endl;
}

MetricsLog open_metrics_log(const std::string& output_dir, bool resumed, int64_t step) {
  const std::string path = output_dir + "/metrics.jsonl";
  cut_metrics_log(path, resumed ? step : -1);
  return MetricsLog(path);
}

OutputDirectory run_directory(const std::string& path) {
  return {path,
          "run directory",
          {"run.json", "metrics.jsonl", "results.json", "best", "checkpoints", kBestStaging,
           kBestReplaced}};
}

Progress::Progress(bool enabled) : enabled_(enabled), tty_(enabled && ::isatty(STDERR_FILENO)) {}

void Progress::update(int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, double loss,
                      double lr, double examples_per_second, double eta, bool log_line) {
  if (!enabled_) return;
  if (tty_) {
    const int width = 24;
    const int filled = batches > 0 ? static_cast<int>(width * batch / batches) : width;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(width, '-');
    std::fprintf(stderr, "\repoch %lld/%lld |%s| %lld/%lld loss %.4f lr %.2e %.0f ex/s ETA %s ",
                 static_cast<long long>(epoch + 1), static_cast<long long>(epochs), bar.c_str(),
                 static_cast<long long>(batch), static_cast<long long>(batches), loss, lr,
                 examples_per_second, format_duration(eta).c_str());
    std::fflush(stderr);
  } else if (log_line) {
    std::fprintf(stderr,
                 "train: epoch %lld/%lld step %lld/%lld loss %.4f lr %.2e %.0f ex/s ETA %s\n",
                 static_cast<long long>(epoch + 1), static_cast<long long>(epochs),
                 static_cast<long long>(batch), static_cast<long long>(batches), loss, lr,
                 examples_per_second, format_duration(eta).c_str());
  }
}

void Progress::message(const std::string& text) {
  if (!enabled_) return;
  std::fprintf(stderr, "%s%s\n", tty_ ? "\n" : "", text.c_str());
}

Json task_progress_json(const TaskProgress& p) {
  Json out = {{"best_step", p.best_step},
              {"evals_without_improvement", p.evals_without_improvement},
              {"best_metrics", p.best_metrics}};
  if (std::isfinite(p.best)) out["best"] = p.best;
  return out;
}

TaskProgress read_task_progress(const Json& json, const std::string& file, const std::string& key,
                                int64_t global_step) {
  // Counts through integer_value(): nlohmann's value() would take 1.5 as 1 and 2^64 - 1 as -1.
  auto count = [&](const char* name, int64_t absent) {
    if (!json.contains(name)) return absent;
    const std::optional<int64_t> value = integer_value(json.at(name));
    if (!value) {
      throw Error(file + ": key '" + key + "': " + name + " must be an integer, found " +
                  json_text(json.at(name)));
    }
    return *value;
  };
  TaskProgress p;
  p.best = json.value("best", p.best);
  p.best_step = count("best_step", -1);
  p.evals_without_improvement = count("evals_without_improvement", 0);
  if (json.contains("best_metrics")) {
    p.best_metrics = json.at("best_metrics").get<std::map<std::string, double>>();
  }
  if (p.best_step < -1 || p.best_step > global_step) {
    throw Error(file + ": key '" + key + "': best_step " + std::to_string(p.best_step) +
                " is not a step from -1 to global_step " + std::to_string(global_step));
  }
  if (p.evals_without_improvement < 0) {
    throw Error(file + ": key '" + key + "': evals_without_improvement must be >= 0");
  }
  return p;
}

void LogWindow::add_batch(int64_t examples) {
  ++batches_;
  examples_ += examples;
}

double LogWindow::mean_loss() const {
  return batches_ > 0 ? loss_ / static_cast<double>(batches_) : 0.0;
}

WindowRate LogWindow::rate() const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return {seconds > 0 ? static_cast<double>(examples_) / seconds : 0.0};
}

void LogWindow::reset() {
  *this = LogWindow();
}

void add_loss_scaling(Json& event, const TrainingState& state) {
  if (state.loss_scale > 0) {
    event["loss_scale"] = state.loss_scale;
    event["skipped_steps"] = state.skipped_steps;
  }
}

Json machine_json() {
  return {{"hardware_threads", std::thread::hardware_concurrency()},
          {"torch_threads", at::get_num_threads()},
          {"cuda_available", torch::cuda::is_available()},
          {"cpu_allocator", cpu_allocator()}};
}

Json trainer_options_json(const TrainerOptions& o) {
  return {{"epochs", o.epochs},
          {"max_steps", o.max_steps},
          {"batch_size", o.batch_size},
          {"gradient_accumulation", o.gradient_accumulation},
          {"lr", o.lr},
          {"weight_decay", o.weight_decay},
          {"schedule", schedule_name(o.schedule)},
          {"warmup_ratio", o.warmup_ratio},
          {"max_grad_norm", o.max_grad_norm},
          {"group_by_length", o.group_by_length},
          {"eval_every", o.eval_every},
          {"early_stopping_patience", o.early_stopping_patience},
          {"seed", o.seed},
          {"max_length", o.max_length},
          {"device", o.device.str()},
          {"precision", precision_name(o.precision)},
          {"cache_frozen_layers", o.cache_frozen_layers},
          {"gradient_checkpointing", o.gradient_checkpointing},
          {"recompute_attention_probabilities", o.recompute_attention_probabilities},
          {"last_layer_first_position", o.last_layer_first_position},
          {"sampling_temperature", o.sampling_temperature}};
}

Json base_json(const TrainerOptions& options, torch::nn::Module& model, const BertConfig& config) {
  Json model_dir = nullptr;
  if (!options.base_model_dir.empty()) {
    // Absolute and without links, so that the record names the directory wherever it is read.
    std::unique_ptr<char, decltype(&std::free)> real(
        ::realpath(options.base_model_dir.c_str(), nullptr), &std::free);
    model_dir = real ? std::string(real.get()) : options.base_model_dir;
  }
  return {{"model_dir", model_dir},
          {"random_init", options.base_random_init},
          {"config_sha256", base_config_sha256(config)},
          // Without the pooler: a base that has none gets a new one, drawn from the run's seed.
          {"weights_sha256", base_weights_sha256(model, /*layer_norms=*/false, /*pooler=*/true)}};
}

void apply_recompute_options(const TrainerOptions& options, BertEncoderImpl& encoder) {
  if (options.gradient_checkpointing) encoder.set_gradient_checkpointing(true);
  if (options.recompute_attention_probabilities) {
    encoder.set_recompute_attention_probabilities(true);
  }
}

Json task_configs_json(const BertModelImpl& bert, const std::optional<std::string>& task) {
  const TaskEntry* entry = task ? &bert.tasks().at(*task) : nullptr;
  return {
      {"adapter_config", entry ? Json::parse(entry->adapter.to_json_string()) : Json(nullptr)},
      {"fusion_config",
       entry && entry->is_fusion() ? Json::parse(entry->fusion->to_json_string()) : Json(nullptr)}};
}

ResumeRecord::ResumeRecord(const TrainerOptions& run_options, const Json& task_options)
    : options(trainer_options_json(run_options)) {
  options.update(task_options);
}

void ResumeRecord::compare_with(const Json& checkpoint_extra) {
  changed = Json::object();
  const Json recorded = checkpoint_extra.value("options", Json());
  if (!recorded.is_object()) return;
  for (const auto& [key, value] : options.items()) {
    if (recorded.contains(key) && recorded[key] != value) {
      changed[key] = Json::array({recorded[key], value});
    }
  }
}

void ResumeRecord::check_same_adapters(const Json& checkpoint_extra,
                                       const std::string& path) const {
  const Json recorded = checkpoint_extra.value("adapters", Json());
  if (!recorded.is_object()) return;
  for (const auto& [task, configs] : adapters.items()) {
    if (!recorded.contains(task)) continue;
    for (const auto& [kind, config] : configs.items()) {
      const Json before = recorded[task].is_object() ? recorded[task].value(kind, Json()) : Json();
      if (!config.is_object() || !before.is_object()) continue;
      for (const auto& [key, value] : config.items()) {
        // A key the checkpoint lacks came with a later version; its tensors still say.
        if (kMayChangeOnResume.count(key) != 0 || !before.contains(key)) continue;
        const Json& was = before[key];
        if (was != value) {
          throw Error(path + ": key 'extra.adapters." + task + "." + kind + "." + key +
                      "': the checkpoint's steps trained task '" + task + "' with " +
                      json_text(was) + ", this run gives it " + json_text(value) +
                      "; resume with the config the run started with (run.json's), or start "
                      "afresh with --overwrite");
        }
      }
    }
  }
}

Json ResumeRecord::stamped(Json extra) const {
  extra["options"] = options;
  if (!adapters.empty()) extra["adapters"] = adapters;
  return extra;
}

Json ResumeRecord::history(const std::string& output_dir, int64_t step) const {
  Json history = Json::array();
  if (!resumed) return history;
  const std::string path = output_dir + "/run.json";
  if (optional_file_exists(path)) {
    const Json run = parsed_or_discarded(read_file(path));
    if (run.is_object() && run.contains("resumes") && run["resumes"].is_array()) {
      for (const Json& resume : run["resumes"]) {
        const std::optional<int64_t> resumed_at = resume.is_object() && resume.contains("step")
                                                      ? integer_value(resume["step"])
                                                      : std::nullopt;
        if (resumed_at && *resumed_at < step) {
          history.push_back(resume);
        }
      }
    }
  }
  history.push_back({{"step", step}, {"changed", changed}});
  return history;
}

Json ResumeRecord::event(int64_t step) const {
  Json out = {{"event", "resume"}, {"step", step}};
  if (!changed.empty()) out["changed"] = changed;
  return out;
}

void resume_run(TrainingEngine& engine, const TrainerOptions& options, int64_t batches_per_epoch,
                bool writes, const std::string& fingerprint, ResumeRecord& record,
                Progress& progress, const ReadExtraState& read_extra) {
  if (writes) {
    engine.checkpoints().remove_stale_temporaries();
    remove_tree(options.output_dir + "/" + kBestStaging);
  }
  DataShape shape;
  shape.batches_per_epoch = batches_per_epoch;
  shape.gradient_accumulation = options.gradient_accumulation;
  shape.data_seed = options.seed;
  const std::optional<std::string> latest =
      engine.resume(shape, fingerprint, [&](const TrainingState& saved, const std::string& path) {
        try {
          const Json extra = Json::parse(saved.extra_json);
          record.compare_with(extra);
          record.check_same_adapters(extra, path);
          // The engine compares the fingerprint's keys that this run has; a stack is recorded
          // only when there is one, so a checkpoint's stack that this run leaves out is caught
          // here.
          const Json this_run = Json::parse(fingerprint);
          const Json recorded = extra.value("data", Json::object());
          for (const auto& item : recorded.items()) {
            if (item.key().find("stacked_on") != std::string::npos &&
                !this_run.contains(item.key())) {
              throw Error(path + ": key 'extra': the checkpoint was made with " + item.key() + " " +
                          json_text(item.value()) + ", this run has none");
            }
          }
          read_extra(extra, path, saved.global_step);
        } catch (const Json::exception& e) {
          throw Error(path + ": key 'extra' is not the trainer's state: " + e.what());
        }
      });
  const int64_t step = engine.state().global_step;
  const std::string& output_dir = options.output_dir;
  record.resumed = latest.has_value();
  if (latest) {
    std::string changes;
    for (const auto& [key, values] : record.changed.items()) {
      changes += (changes.empty() ? "; options changed since its steps: " : ", ") + key + " " +
                 json_text(values[0]) + " -> " + json_text(values[1]);
    }
    progress.message("train: resumed from " + *latest + " at step " + std::to_string(step) +
                     changes);
  } else if (optional_file_exists(output_dir + "/run.json")) {
    throw Error(output_dir + ": holds a run but no checkpoint to resume (" +
                engine.checkpoints().root() + "); replace the run with --overwrite");
  } else {
    progress.message("train: --resume given but no checkpoint found; starting fresh");
  }
}

std::string metrics_text(const std::map<std::string, double>& metrics) {
  std::string out;
  for (const auto& [k, v] : metrics) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%s%s %.4f", out.empty() ? "" : ", ", k.c_str(), v);
    out += buffer;
  }
  return out;
}

std::string empty_best_staging(const std::string& output_dir) {
  const std::string staging = output_dir + "/" + kBestStaging;
  remove_tree(staging);
  return staging;
}

void move_best_into_place(const std::string& output_dir, const std::string& target) {
  const std::string temp = output_dir + "/" + kBestStaging;
  const std::string old = output_dir + "/" + kBestReplaced;
  remove_tree(old);
  std::rename(target.c_str(), old.c_str());
  if (std::rename(temp.c_str(), target.c_str()) != 0) {
    throw Error(target + ": cannot move the best model into place");
  }
  remove_tree(old);
}

std::optional<std::string> kept_best_model(const std::string& directory, int64_t best_step) {
  if (best_step < 0) return std::nullopt;
  for (const char* file : {"adapter_config.json", "adapter_fusion_config.json", "config.json"}) {
    if (file_exists(directory + "/" + file)) return directory;
  }
  return std::nullopt;
}

}  // namespace adaptertune::detail
