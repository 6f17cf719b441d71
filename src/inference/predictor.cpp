#include "adaptertune/inference/predictor.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <shared_mutex>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/device.h"
#include "adaptertune/distributed/process_group.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/inference/prepare_for_inference.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/layers/linear.h"  // the cover's destructor
#include "adaptertune/parameter_names.h"
#include "adaptertune/tasks/batcher.h"
#include "adaptertune/tasks/squad.h"
#include "adaptertune/tasks/squad_features.h"
#include "adaptertune/version.h"
#include "distributed/shared_batches.h"
#include "distributed/squad_windows.h"

namespace adaptertune {

Prediction make_prediction(const HeadConfig& head, std::vector<float> logits,
                           std::optional<std::string> task) {
  Prediction out;
  out.task = std::move(task);
  if (head.problem_type == ProblemType::kRegression) {
    out.score = logits.at(0);
  } else {
    const auto best = std::max_element(logits.begin(), logits.end());
    std::vector<double> exps;
    double sum = 0;
    for (float l : logits) sum += exps.emplace_back(std::exp(double(l) - double(*best)));
    for (size_t i = 0; i < exps.size(); ++i) {
      out.probabilities.emplace_back(head.label_name(static_cast<int64_t>(i)), exps[i] / sum);
    }
    out.label = head.label_name(best - logits.begin());
  }
  out.logits = std::move(logits);
  return out;
}

std::string Prediction::to_json() const {
  nlohmann::ordered_json out;
  out["task"] = task ? nlohmann::ordered_json(*task) : nlohmann::ordered_json(nullptr);
  if (answer) {
    out["answer"] = *answer;
    out["score"] = score.value_or(0.0);
    out["null_score"] = null_score.value_or(0.0);
    return json_text(out);
  }
  if (score) {
    out["score"] = *score;
  } else {
    out["label"] = label.value_or("");
    nlohmann::ordered_json named = nlohmann::ordered_json::object();
    for (const auto& [name, p] : probabilities) named[name] = p;
    out["probabilities"] = named;
  }
  out["logits"] = logits;
  return json_text(out);
}

namespace {

// What a head answers, as TaskInfo::to_json() and BaseInfo::to_json() say it.
nlohmann::ordered_json head_json(bool span_head, const HeadConfig& head,
                                 const std::optional<QuestionAnsweringOptions>& answering) {
  nlohmann::ordered_json labels = nullptr;
  const char* problem_type = "question_answering";
  if (!span_head) {
    problem_type = "regression";
    if (head.problem_type != ProblemType::kRegression) {
      problem_type = "single_label_classification";
      labels = nlohmann::ordered_json::array();
      for (int64_t i = 0; i < head.num_labels; ++i) labels.push_back(head.label_name(i));
    }
  }
  nlohmann::ordered_json question_answering = nullptr;
  if (answering) {
    question_answering = nlohmann::ordered_json::parse(question_answering_record_json(*answering));
  }
  return {{"problem_type", problem_type},
          {"question_answering", question_answering},
          {"labels", labels}};
}

}  // namespace

std::string TaskInfo::to_json() const {
  nlohmann::ordered_json out = {{"name", name}};
  out.update(head_json(span_head, head, question_answering));
  out.update(
      nlohmann::ordered_json{{"adapter_config", nlohmann::ordered_json::parse(adapter_config_json)},
                             {"stacked_on", stacked_on},
                             {"max_length", max_length},
                             {"bytes", bytes},
                             {"base",
                              {{"config_sha256", base_config_sha256},
                               {"weights_sha256", base_weights_sha256},
                               {"matches", base_matches}}}});
  return json_text(out);
}

std::string BaseInfo::to_json() const {
  nlohmann::ordered_json no_task = head_json(span_head, head, question_answering);
  no_task.update(nlohmann::ordered_json{{"max_length", max_length}, {"trained", head_trained}});
  // The architecture as BertConfig models it; `architectures` names a Python class, which the
  // writer fills with its own ("BertModel"), not the file's.
  nlohmann::ordered_json architecture = nlohmann::ordered_json::parse(config.to_json_string());
  architecture.erase("architectures");
  std::error_code error;
  const std::filesystem::path directory =
      std::filesystem::canonical(model_directory, error);  // "x/" and "." named too
  return json_text(
      nlohmann::ordered_json{{"model", error ? model_directory : directory.filename().string()},
                             {"config", architecture},
                             {"config_sha256", config_sha256},
                             {"precision", precision_name(precision)},
                             {"device", device.str()},
                             {"bytes", bytes},
                             {"no_task", no_task}});
}

// A readers-writer lock that lets a waiting writer in: glibc's rwlock prefers readers, so a
// steady stream of predict() calls would hold add_task() off forever. A reader passes the gate
// before taking its shared lock; a writer holds the gate while it waits, so new readers queue
// behind it and the ones in flight drain.
class FairSharedMutex {
 public:
  void lock_shared() {
    std::lock_guard<std::mutex> pass(gate_);
    mutex_.lock_shared();
  }
  void unlock_shared() { mutex_.unlock_shared(); }
  void lock() {
    std::lock_guard<std::mutex> hold(gate_);
    mutex_.lock();
  }
  void unlock() { mutex_.unlock(); }

 private:
  std::mutex gate_;
  std::shared_mutex mutex_;
};

struct Predictor::State {
  // Shared by predict() and the other readers, exclusive for add_task() / remove_task().
  mutable FairSharedMutex mutex;
  BertForSequenceClassification model{nullptr};
  // A span task (question answering): its span head around `model`'s BertModel, shared, and how
  // its questions become windows and answers.
  struct SpanTask {
    // A constructor of its own, not default member initialisers: Clang does not count a nested
    // struct with those as default-constructible inside its enclosing class (std::optional's
    // emplace() then fails to compile; GCC takes it).
    SpanTask() : model(nullptr) {}
    BertForQuestionAnswering model;
    QuestionAnsweringOptions options;
  };
  std::map<std::string, SpanTask> span_tasks;
  // The model directory's own span head when it is a span model (e.g. a fully fine-tuned
  // BertForQuestionAnswering): requests that name no task are questions for it.
  std::optional<SpanTask> base_span;
  BaseInfo base;  // what base_info() gives; set by the constructor
  std::unique_ptr<Tokenizer> tokenizer;
  PredictorOptions options;
  Precision precision = Precision::kFloat32;
  std::map<std::string, TaskInfo> info;
  std::vector<std::string> warnings;
  int64_t base_bytes = 0;
  // The base as packs know it, taken once, when the first pack loads or before the frozen
  // weights are stored in the compute dtype (which changes what hashing them gives). Packs add
  // only their tasks' tensors, which the identity leaves out, so it holds for every later pack.
  std::optional<BaseWeightsIdentity> identity;
  // While it lives the forward products of the frozen weights read prepacked copies
  // (PredictorOptions::prepack_frozen_weights). Declared after the model: it goes first.
  std::unique_ptr<FrozenLinearWeightsPrepacked> prepacked;

  const BaseWeightsIdentity& base_identity() {
    if (!identity) identity = BaseWeightsIdentity::of(*model);
    return *identity;
  }

  // set_up_for_inference(): every weight frozen, those that autocast would cast on every forward
  // pass stored in `precision`'s dtype once, the attention projections packed, and a new cover
  // for the prepacked copies: a loaded pack's weights join it, a removed task's leave it (and
  // their copies go), while the weights both covers hold keep theirs (the new one is made before
  // the old one goes).
  void prepare_weights() {
    if (precision != Precision::kFloat32) base_identity();
    prepacked =
        set_up_for_inference(*model, options.device, precision, options.prepack_frozen_weights,
                             PrepackedDtypes::kBFloat16AndFloat32);
  }

  // The length requests are truncated to: the option, else what the pack records (0: nothing),
  // else the default.
  int64_t length(int64_t recorded) const {
    if (options.max_length > 0) return options.max_length;
    return recorded > 0 ? recorded
                        : model->bert->config().default_sequence_length(kDefaultMaxLength);
  }

  // A span task's windows and answers (what a pack or a model directory records, as `predict
  // --task squad` takes them), in windows of the option's length when given and with the
  // span_overrides in place, checked to fit their questions and the model's positions.
  QuestionAnsweringOptions span_options(const ModelDirectoryRecord& recorded,
                                        const std::string& pack) const {
    const BertConfig& base = model->bert->config();
    const QuestionAnsweringOptions qa = options.span_overrides.applied_to(recorded.span_options(
        base, options.max_length > 0 ? std::optional<int64_t>(options.max_length) : std::nullopt));
    try {
      qa.features.validate();
    } catch (const Error& e) {
      throw Error(pack + ": its windows of " + std::to_string(qa.features.max_length) +
                  " tokens: " + e.what());
    }
    base.check_sequence_length(qa.features.max_length, pack + ": max_length");
    return qa;
  }

  // Loads `pack` as a task; the caller holds the lock exclusively (or is the constructor).
  std::string load(const std::string& pack, const std::optional<std::string>& name) {
    // Checked before the pack changes the model.
    const AdapterPackInfo recorded = read_adapter_pack_info(pack);
    std::optional<SpanTask> span;
    if (recorded.span_head) {
      span.emplace().options = span_options(recorded.record(), pack);
    } else {
      model->bert->config().check_sequence_length(length(recorded.max_length),
                                                  pack + ": max_length");
    }
    std::vector<std::string> loaded;
    for (const auto& [task_name, task] : info) loaded.push_back(task_name);
    const std::vector<std::string> missing = recorded.missing_below(loaded);
    if (!missing.empty()) {
      throw Error(pack + " was trained stacked on other adapters (" +
                  Stack(recorded.trained_stack()).describe() + "); " + joined(missing) +
                  " not loaded (load their adapter packs first)");
    }
    AdapterPackLoad load;
    if (span) {
      // Its own span head around the shared base: its adapters go into the base's BertModel.
      span->model = BertForQuestionAnswering(model->bert);
      load = load_adapter_pack(span->model, pack, base_identity(), name);
      span->model->qa_outputs->to(options.device);
      span->model->eval();
    } else {
      load = load_adapter_pack(model, pack, base_identity(), name);
    }
    const AdapterPackInfo& pack_info = load.info;
    prepare_weights();                              // the pack's new modules too
    model->bert->set_active_adapter(std::nullopt);  // requests name their tasks
    model->eval();                                  // the new modules too
    warnings.insert(warnings.end(), load.warnings.begin(), load.warnings.end());
    if (!load.head_loaded) {
      warnings.push_back("adapter pack " + pack +
                         " has no head; its task answers with the model directory's head");
    }
    TaskInfo task;
    task.name = load.adapter_name;
    task.pack = pack;
    if (span) {
      task.span_head = true;
      task.question_answering = span->options;
    } else {
      task.head = model->head_config(task.name);
    }
    task.adapter_config_json =
        pack_info.fusion ? pack_info.fusion->to_json_string() : pack_info.config.to_json_string();
    task.stacked_on = pack_info.stacked_on;
    task.max_length = span ? span->options.features.max_length : length(pack_info.max_length);
    task.base_config_sha256 = pack_info.base_config_sha256;
    task.base_weights_sha256 = pack_info.base_weights_sha256;
    task.base_matches = load.warnings.empty();
    const std::string name_loaded = task.name;
    info[name_loaded] = std::move(task);
    if (span) span_tasks[name_loaded] = std::move(*span);
    return name_loaded;
  }

  // Predictor::check_request(); the caller holds the lock.
  void check(const TaskRequest& request) const {
    model->bert->tasks().check_known(request.task);  // names the tasks there are
    if (!request.text_pair && is_span(request.task)) {
      throw Error((request.task ? "task " + *request.task : std::string("the model directory")) +
                  " answers questions from a context (a span head): give the question as "
                  "\"text\" and the context as \"text_pair\"");
    }
  }

  // Whether `task`'s requests (std::nullopt: the model directory's) are questions for a span head.
  bool is_span(const std::optional<std::string>& task) const {
    return task ? span_tasks.count(*task) > 0 : base_span.has_value();
  }

  // Classification and regression: the predictions of the requests `wanted`, into `out`.
  void predict_sequences(const std::vector<TaskRequest>& requests,
                         const std::vector<size_t>& wanted, ProcessGroup* group,
                         std::vector<Prediction>& out) const;
  // Span task `task` (std::nullopt: the model directory's span head): the answers to the
  // questions `requests[rows]`, into `out`.
  void answer_questions(const std::vector<TaskRequest>& requests,
                        const std::optional<std::string>& task, const std::vector<size_t>& rows,
                        ProcessGroup* group, std::vector<Prediction>& out) const;

  // Bytes of task `task`'s own tensors (Predictor::task_bytes()); the caller holds the lock.
  int64_t bytes_of(const std::string& task) const {
    int64_t bytes = 0;
    auto add = [&](const at::Tensor& tensor) {
      bytes += tensor.numel() * static_cast<int64_t>(tensor.element_size());
    };
    for (const auto& item : model->named_parameters()) {
      if (parameter_task(item.key()) == task) add(item.value());
    }
    const auto span = span_tasks.find(task);
    if (span != span_tasks.end()) {
      for (const at::Tensor& tensor : span->second.model->qa_outputs->parameters()) add(tensor);
    }
    return bytes;
  }

  const TaskInfo& at(const std::string& task) const {
    model->bert->tasks().at(task);  // throws, naming the tasks there are
    return info.at(task);
  }
};

Predictor::Predictor(const std::string& model_directory,
                     const std::vector<std::string>& adapter_packs, PredictorOptions options)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  check_device(options.device);
  if (options.batch_size < 1) throw Error("Predictor: batch_size must be at least 1");
  if (options.max_length < 0) throw Error("Predictor: max_length must not be negative");
  s.options = options;
  // Everything that can be checked without the weights first: packs, then the tokenizer.
  std::vector<AdapterPackInfo> infos;
  for (const auto& pack : adapter_packs) infos.push_back(read_adapter_pack_info(pack));
  check_fused_adapters(infos, adapter_packs);
  // What the model directory records of its own run (a full or head-only fine-tuning's).
  const ModelDirectoryRecord directory_record = read_model_directory_record(model_directory);
  // The precision, from the option or what the packs record (without packs, what the model
  // directory records, as `eval` takes it): an fp16 the device cannot run is refused here, before
  // any weights load.
  std::optional<Precision> recorded = directory_record.precision;
  bool agree = true;
  for (size_t i = 0; i < infos.size(); ++i) {
    if (i == 0) recorded = infos[i].precision;
    agree = agree && infos[i].precision == recorded;
  }
  std::string precision_warning;
  s.precision = inference_precision(options.precision, agree ? recorded : std::nullopt,
                                    options.device, &precision_warning);
  s.tokenizer = load_tokenizer(model_directory);
  const std::string config_path = model_directory + "/config.json";
  s.base.model_directory = model_directory;
  s.base.config = BertConfig::from_file(config_path);
  s.base.config.check_sequence_length(options.max_length, "PredictorOptions::max_length");
  if (options.max_length == 0 && directory_record.max_length > 0) {
    // Refused before the weights load, as a pack's recorded length is.
    s.base.config.check_sequence_length(directory_record.max_length,
                                        config_path + ": adaptertune.max_length");
  }
  s.base.config_sha256 = base_config_sha256(s.base.config);
  LoadReport report;
  s.model = load_bert_for_sequence_classification(
      model_directory, HeadConfig::from_model_config(read_file(config_path), config_path), &report);
  if (report.ignored_span_head()) {
    // Its span head around the base, with the windows and answers the directory records (else
    // SQuAD's), as `eval`/`predict --task squad` run it.
    State::SpanTask& span = s.base_span.emplace();
    span.options = s.span_options(directory_record, model_directory);
    span.model = BertForQuestionAnswering(s.model->bert);
    load_state_dict(*span.model, report.span_head, model_directory);
    report.span_head.clear();  // copied: the checkpoint's tensors go
    span.model->qa_outputs->to(options.device);
    span.model->eval();
    s.base.span_head = true;
    s.base.question_answering = span.options;
    s.base.max_length = span.options.features.max_length;
  } else {
    s.base.head = s.model->head_config();
    s.base.head_trained = !report.missing_any(ParameterGroup::kHead);
    s.base.max_length = s.length(directory_record.max_length);
    if (!s.base.head_trained) {
      s.warnings.push_back(model_directory +
                           " has no classifier weights: requests that name no task are answered "
                           "by an untrained head");
    }
  }
  s.model->eval();
  if (!precision_warning.empty()) s.warnings.push_back(precision_warning);
  s.prepare_weights();
  for (size_t i : pack_load_order(infos)) s.load(adapter_packs[i], std::nullopt);
  for (const auto& item : s.model->named_parameters()) {
    if (!parameter_task(item.key())) {
      s.base_bytes += item.value().numel() * static_cast<int64_t>(item.value().element_size());
    }
  }
  if (s.base_span) {
    for (const at::Tensor& tensor : s.base_span->model->qa_outputs->parameters()) {
      s.base_bytes += tensor.numel() * static_cast<int64_t>(tensor.element_size());
    }
  }
}

Predictor::~Predictor() = default;
Predictor::Predictor(Predictor&&) noexcept = default;
Predictor& Predictor::operator=(Predictor&&) noexcept = default;

std::vector<std::string> Predictor::tasks() const {
  std::shared_lock lock(state_->mutex);
  return state_->model->bert->adapter_names();  // the model's record, in the order of loading
}

bool Predictor::has_task(const std::string& task) const {
  std::shared_lock lock(state_->mutex);
  return state_->info.count(task) > 0;
}

TaskInfo Predictor::task_info(const std::string& task) const {
  std::shared_lock lock(state_->mutex);
  TaskInfo info = state_->at(task);
  info.bytes = state_->bytes_of(task);
  return info;
}

BaseInfo Predictor::base_info() const {
  BaseInfo base = state_->base;  // set once, by the constructor
  base.precision = state_->precision;
  base.device = state_->options.device;
  base.bytes = state_->base_bytes;
  return base;
}

std::string Predictor::describe() const {
  nlohmann::ordered_json out = nlohmann::ordered_json::parse(base_info().to_json());
  out["tasks"] = tasks();
  out["library_version"] = version();
  return json_text(out);
}

std::string Predictor::add_task(const std::string& adapter_pack,
                                const std::optional<std::string>& name) {
  std::unique_lock lock(state_->mutex);
  return state_->load(adapter_pack, name);
}

void Predictor::remove_task(const std::string& name) {
  std::unique_lock lock(state_->mutex);
  state_->at(name);  // throws for an unknown task
  for (const auto& [above, task] : state_->info) {
    if (std::find(task.stacked_on.begin(), task.stacked_on.end(), name) != task.stacked_on.end()) {
      throw Error("task " + name + " has task " + above + " stacked on it: remove " + above +
                  " first");
    }
  }
  const auto span = state_->span_tasks.find(name);
  if (span != state_->span_tasks.end()) {
    state_->model->bert->remove_adapter(name);  // its head goes with its SpanTask
    state_->span_tasks.erase(span);
  } else {
    state_->model->remove_task(name);
  }
  state_->info.erase(name);
  state_->prepare_weights();  // the task's weights and their copies go
}

const HeadConfig& Predictor::head(const std::optional<std::string>& task) const {
  std::shared_lock lock(state_->mutex);
  if (!task && state_->base_span) {
    throw Error(
        "the model directory's head is a span head (question answering), no "
        "classification or regression head");
  }
  if (!task) return state_->model->head_config();
  const TaskInfo& info = state_->at(*task);
  if (info.span_head) {
    throw Error("task " + *task +
                " has a span head (question answering), no classification or regression head");
  }
  return info.head;
}

int64_t Predictor::max_length(const std::optional<std::string>& task) const {
  std::shared_lock lock(state_->mutex);
  if (!task) return state_->base.max_length;
  return state_->at(*task).max_length;
}

Precision Predictor::precision() const {
  return state_->precision;
}

c10::Device Predictor::device() const {
  return state_->options.device;
}

std::vector<std::string> Predictor::warnings() const {
  std::shared_lock lock(state_->mutex);
  return state_->warnings;
}

int64_t Predictor::base_bytes() const {
  return state_->base_bytes;
}

int64_t Predictor::task_bytes(const std::string& task) const {
  std::shared_lock lock(state_->mutex);
  state_->at(task);  // throws for an unknown task
  return state_->bytes_of(task);
}

void Predictor::check_request(const TaskRequest& request) const {
  std::shared_lock lock(state_->mutex);
  state_->check(request);
}

std::vector<Prediction> Predictor::predict(const std::optional<std::string>& task,
                                           const std::vector<TextInput>& inputs) const {
  std::vector<TaskRequest> requests;
  requests.reserve(inputs.size());
  for (const auto& input : inputs) requests.push_back({task, input.text, input.text_pair});
  return predict(requests);
}

std::vector<Prediction> Predictor::predict(const std::vector<TaskRequest>& requests) const {
  return predict(requests, nullptr);
}

std::vector<Prediction> Predictor::predict(const std::vector<TaskRequest>& requests,
                                           ProcessGroup* group) const {
  const State& s = *state_;
  if (requests.empty()) return {};
  std::shared_lock lock(s.mutex);
  // Classification and regression requests run together; a span task's questions apart (they
  // become windows of their own length, and answers are taken from all of a question's windows).
  std::vector<size_t> sequence_rows;
  // By task (std::nullopt first: the model directory's span head): the same order everywhere.
  std::map<std::optional<std::string>, std::vector<size_t>> span_rows;
  for (size_t i = 0; i < requests.size(); ++i) {
    const TaskRequest& request = requests[i];
    try {
      s.check(request);
    } catch (const Error& e) {
      throw Error("request " + std::to_string(i) + ": " + e.what());
    }
    if (s.is_span(request.task)) {
      span_rows[request.task].push_back(i);
    } else {
      sequence_rows.push_back(i);
    }
  }
  std::vector<Prediction> out(requests.size());
  // Not only no gradients: no autograd bookkeeping at all (version counters, view tracking) for
  // tensors that never leave this function.
  c10::InferenceMode inference;
  if (!sequence_rows.empty()) s.predict_sequences(requests, sequence_rows, group, out);
  for (const auto& [task, rows] : span_rows) s.answer_questions(requests, task, rows, group, out);
  return out;
}

void Predictor::State::answer_questions(const std::vector<TaskRequest>& requests,
                                        const std::optional<std::string>& task,
                                        const std::vector<size_t>& rows, ProcessGroup* group,
                                        std::vector<Prediction>& out) const {
  const SpanTask& span = task ? span_tasks.at(*task) : *base_span;
  SquadDataset data;
  data.path = "requests";
  data.examples.reserve(rows.size());
  for (size_t row : rows) {
    SquadExample& example = data.examples.emplace_back();
    example.id = std::to_string(row);
    example.question = requests[row].text;
    example.context = *requests[row].text_pair;
  }
  const SquadFeatures features = make_squad_features(data, *tokenizer, span.options.features);
  // The task in the Stack its pack was trained in, for every window (changes no state); the
  // plain base for the model directory's span head.
  const TaskRouting routing =
      task ? TaskRouting::stack(Stack::on_top_of(info.at(*task).stacked_on, *task))
           : TaskRouting::whole_batch(std::nullopt);
  BertForQuestionAnswering model = span.model;  // a handle: forward_routed() changes nothing
  const std::map<std::string, SquadAnswerPrediction> answers = detail::answer_squad_windows(
      data, features, *tokenizer, span.options.answers, options.batch_size, options.device, group,
      [&](const Batch& batch) {
        AutocastGuard autocast(options.device, precision);
        return model->qa_outputs(model->bert
                                     ->forward_routed(batch.input_ids, batch.attention_mask,
                                                      batch.token_type_ids, routing)
                                     .last_hidden_state);
      });
  for (size_t row : rows) {
    const SquadAnswerPrediction& answer = answers.at(std::to_string(row));
    Prediction& prediction = out[row];
    prediction.task = task;
    prediction.answer = answer.text;
    prediction.score = answer.score;
    prediction.null_score = answer.null_score;
  }
}

void Predictor::State::predict_sequences(const std::vector<TaskRequest>& requests,
                                         const std::vector<size_t>& wanted, ProcessGroup* group,
                                         std::vector<Prediction>& out) const {
  // Example j of this pass is request wanted[j].
  EncodedDataset data;
  data.encodings.reserve(wanted.size());
  std::vector<const HeadConfig*> heads;  // each example's head
  heads.reserve(wanted.size());
  for (size_t request : wanted) {
    const std::optional<std::string>& task = requests[request].task;
    const int64_t max_tokens = task ? info.at(*task).max_length : base.max_length;
    data.encodings.push_back(
        tokenizer->encode(requests[request].text, requests[request].text_pair, max_tokens));
    heads.push_back(task ? &info.at(*task).head : &model->head_config());
  }
  Batcher batcher(data, BatcherOptions::for_inference(options.batch_size, tokenizer->pad_id()));
  // Each example's logits; in a group, those of this process's batches until gathered.
  std::vector<std::vector<float>> logits_of(wanted.size());
  BertForSequenceClassification classifier = model;  // a handle: forward_routed() changes nothing
  const auto order = batcher.epoch_order(0);
  for (size_t b = 0; b < order.size(); ++b) {
    if (!detail::evaluates_batch(b, group)) continue;
    const std::vector<size_t>& rows = order[b];
    const Batch batch = batcher.make_batch(rows).to(options.device);
    // Each request runs its task's Stack: the task alone, or on what its pack was trained on.
    std::vector<Stack> stacks;
    for (size_t row : rows) {
      const std::optional<std::string>& task = requests[wanted[row]].task;
      stacks.push_back(task ? Stack::on_top_of(info.at(*task).stacked_on, *task)
                            : Stack(std::vector<std::string>{}));
    }
    const TaskRouting routing = TaskRouting::per_example_stacks(stacks, options.device);
    std::vector<at::Tensor> logits;
    {
      AutocastGuard autocast(options.device, precision);
      logits = classifier->forward_routed(batch.input_ids, batch.attention_mask,
                                          batch.token_type_ids, routing);
    }
    for (size_t g = 0; g < routing.groups().size(); ++g) {
      const auto& routed = routing.groups()[g];
      const at::Tensor cpu = logits[g].to(at::kCPU, at::kFloat).contiguous();
      const float* values = cpu.data_ptr<float>();
      const auto width = static_cast<size_t>(cpu.size(1));
      for (int64_t k = 0; k < cpu.size(0); ++k) {
        const auto in_batch = static_cast<size_t>(routed.row_list[static_cast<size_t>(k)]);
        const float* row = values + static_cast<size_t>(k) * width;
        logits_of[rows[in_batch]].assign(row, row + width);
      }
    }
  }
  if (group) {
    // One all-reduce: every example's logits in a row as wide as the widest head, zeros where
    // another process computed them (or beyond a narrower head's width).
    int64_t width = 1;
    for (const HeadConfig* head : heads) width = std::max(width, head->num_labels);
    at::Tensor gathered = at::zeros({static_cast<int64_t>(wanted.size()), width}, at::kFloat);
    float* values = gathered.data_ptr<float>();
    for (size_t j = 0; j < wanted.size(); ++j) {
      std::copy(logits_of[j].begin(), logits_of[j].end(), values + j * static_cast<size_t>(width));
    }
    detail::gather_by_sum(*group, {gathered}, options.device);
    for (size_t j = 0; j < wanted.size(); ++j) {
      const float* row = values + j * static_cast<size_t>(width);
      logits_of[j].assign(row, row + heads[j]->num_labels);
    }
  }
  for (size_t j = 0; j < wanted.size(); ++j) {
    out[wanted[j]] = make_prediction(*heads[j], std::move(logits_of[j]), requests[wanted[j]].task);
  }
}

}  // namespace adaptertune
