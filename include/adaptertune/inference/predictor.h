#pragma once
/// @file predictor.h
/// Serving many tasks from one base: a model directory plus any number of adapter packs, asked
/// for predictions on raw text, one task or a mix of tasks per call.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/Device.h>

#include "adaptertune/bert_config.h"
#include "adaptertune/head_config.h"
#include "adaptertune/inference/task_request.h"
#include "adaptertune/precision.h"
#include "adaptertune/tasks/squad_features.h"

namespace adaptertune {

class ProcessGroup;

/// How a Predictor runs.
struct PredictorOptions {
  /// Where the model runs (see parse_device()).
  c10::Device device = c10::Device(c10::kCPU);
  /// Autocast precision; std::nullopt: the one the packs record when they all record the same
  /// (without packs, the one the model directory records: read_model_directory_record()), else
  /// fp32 (fp32 too
  /// for fp16 packs on the CPU, whose autocast has no fp16: warnings() says so;
  /// inference_precision()). An fp16 asked for on the CPU is an Error. With bf16 (or fp16) the
  /// weights of every Linear are stored in that dtype once (store_frozen_linear_weights()): the
  /// same predictions, bit for bit, without autocast casting them on every forward pass, in half
  /// their memory. In every precision the attention's query, key and value are packed into one
  /// block (prepare_for_inference()).
  std::optional<Precision> precision;
  /// Tokens per example (special tokens included); 0: what each task's pack records (for requests
  /// that name no task, what the model directory records), else 128 (at most the model's
  /// max_position_embeddings). A length beyond those positions is an Error. For
  /// a span task (and a span model directory's own head), the length of its windows (0: what its
  /// pack, or the span model directory, records, else SQuAD's 384, at most the model's
  /// positions).
  int64_t max_length = 0;
  /// For span tasks: windows and answer options that replace what their packs (or a span model
  /// directory) record, each where given (the stride, the question's length, n-best, the longest
  /// answer, v2.0's null-score threshold). The windows are checked against each task's length.
  QuestionAnsweringOverrides span_overrides;
  /// Examples per forward pass; requests are sorted by length into batches padded to their
  /// longest example.
  int64_t batch_size = 64;
  /// On the CPU, the Linear weights are also kept in the blocked layout oneDNN's kernels multiply
  /// (FrozenLinearWeightsPrepacked, layers/linear.h), each copy made at the weight's first
  /// product, instead of oneDNN laying every weight out anew inside every product. In bf16: the
  /// same predictions, bit for bit, 1.14-1.66x faster (docs/benchmarks.md; most for short
  /// requests), for two more bytes per weight value while the Predictor lives (bert-base: 170
  /// MB). In fp32: the same predictions up to float32 rounding (per-shape kernels), 1.1-1.2x
  /// faster on SST-2 dev and 2.4-3.4x on one short request, level on full batches of bert-base's
  /// shape, for four more bytes per weight value (bert-base: 340 MB). Has no effect in fp16 or on
  /// other devices.
  bool prepack_frozen_weights = true;
};

/// One text, or a pair for sentence-pair tasks; for a span task (question answering), the
/// question and its context.
struct TextInput {
  std::string text;
  std::optional<std::string> text_pair;
};

/// What a head says about one example.
struct Prediction {
  /// The task that answered (std::nullopt: the plain base).
  std::optional<std::string> task;
  /// Classification: the most likely label's name (`id2label`, else "LABEL_<i>").
  std::optional<std::string> label;
  /// Classification: every label with its softmax probability, in label order.
  std::vector<std::pair<std::string, double>> probabilities;
  /// Regression: the predicted value. Span: the answer's score (its start and end logits).
  std::optional<double> score;
  /// Span (question answering): the answer, the context's own characters; empty for no answer.
  std::optional<std::string> answer;
  /// Span: the score of no answer (the [CLS] start and end logits, lowest over the windows).
  std::optional<double> null_score;
  /// Classification and regression: the head's raw output.
  std::vector<float> logits;

  /// One line of JSON: `{"task", "label", "probabilities": {label: p, …}, "logits"}`,
  /// `{"task", "score", "logits"}` for regression (`"task": null` for the plain base), or
  /// `{"task", "answer", "score", "null_score"}` for a span task.
  std::string to_json() const;
};

/// What a Predictor knows of one of its tasks, read from its pack.
struct TaskInfo {
  std::string name;
  /// The pack directory it was loaded from.
  std::string pack;
  /// Its classification or regression head; default (and meaningless) for a span task.
  HeadConfig head;
  /// Whether its head is a span head (question answering): its requests give the question as
  /// `text` and the context as `text_pair`, and it answers with a stretch of the context.
  bool span_head = false;
  /// A span task's windows and answer extraction (its pack's record, else the defaults of
  /// QuestionAnsweringOptions; the windows' length is `max_length`; an unset `doc_stride` is
  /// SquadFeatureOptions::stride()); std::nullopt for other tasks.
  std::optional<QuestionAnsweringOptions> question_answering;
  /// The adapter's config as the pack's `adapter_config.json` gives it (JSON).
  std::string adapter_config_json;
  /// The tasks it runs on top of, bottom first, as its pack records them (empty: alone): its
  /// requests run `Stack(stacked_on..., name)`.
  std::vector<std::string> stacked_on;
  /// The length its requests are truncated to; a span task's windows' length.
  int64_t max_length = 0;
  /// The base identities the pack records (empty when it records none), and whether they are
  /// this Predictor's base.
  std::string base_config_sha256;
  std::string base_weights_sha256;
  bool base_matches = true;
  /// Bytes of its own tensors: all that loading its pack added to the model (task_bytes()).
  int64_t bytes = 0;

  /// One line of JSON, as `GET /v1/tasks` lists it: `{"name", "problem_type"
  /// ("single_label_classification", "regression" or "question_answering"), "question_answering"
  /// (a span task's windows and answers as its pack records them, else null), "labels" (a
  /// classifier's, else null), "adapter_config", "stacked_on", "max_length", "bytes", "base":
  /// {"config_sha256", "weights_sha256", "matches"}}`. The pack's path is left out.
  std::string to_json() const;
};

/// What a Predictor knows of its base, the model directory every task shares, and of what the
/// requests that name no task get from it.
struct BaseInfo {
  /// The model directory it was loaded from.
  std::string model_directory;
  /// Its architecture (`config.json`).
  BertConfig config;
  /// SHA-256 of that config as a pack trained on this base records it (`base_config_sha256`,
  /// TaskInfo::base_config_sha256).
  std::string config_sha256;
  /// Whether the model directory is a span model (its checkpoint holds a span head,
  /// `qa_outputs`): the requests that name no task are then questions with their context.
  bool span_head = false;
  /// The model directory's classification or regression head (`config.json`'s labels and
  /// problem type); default (and meaningless) for a span model.
  HeadConfig head;
  /// Whether the checkpoint holds that head's weights (a span model's: its span head's). False:
  /// the requests that name no task are answered by an untrained head (warnings() says so too).
  bool head_trained = true;
  /// A span model's windows and answer extraction (the windows' length is `max_length`);
  /// std::nullopt otherwise.
  std::optional<QuestionAnsweringOptions> question_answering;
  /// The length the requests that name no task are truncated to; a span model's windows' length.
  int64_t max_length = 0;
  /// How the Predictor runs it (Predictor::precision(), device()).
  Precision precision = Precision::kFloat32;
  c10::Device device = c10::Device(c10::kCPU);
  /// Bytes of its tensors as stored (base_bytes()).
  int64_t bytes = 0;

  /// One line of JSON, as `GET /v1/model` gives it: `{"model" (the model directory's name, not
  /// its path), "config" (config.json as BertConfig reads it), "config_sha256", "precision",
  /// "device", "bytes", "no_task": {"problem_type", "question_answering", "labels" (as
  /// TaskInfo::to_json() says them), "max_length", "trained"}}`.
  std::string to_json() const;
};

/// The prediction `head` makes from `logits` (one example's).
Prediction make_prediction(const HeadConfig& head, std::vector<float> logits,
                           std::optional<std::string> task = std::nullopt);

/// A model directory (config.json, model.safetensors, the tokenizer's files) with adapter packs
/// loaded onto it as tasks, ready to answer requests.
///
/// Classification, regression and span (question answering) tasks share the one base. A span
/// task answers a question from its context as `predict --task squad` does: the context cut into
/// windows (the pack's recorded `doc_stride` and `max_query_length`, else the library's defaults),
/// the best span over them (its `n_best` and `max_answer_length`). The answer is that span, or
/// empty (no answer) when the pack records `allow_no_answer` (its run evaluated on SQuAD v2.0) and
/// the null score beats the span's score by more than its `null_score_threshold`, as
/// predict_squad() answers with the pack's options; empty with score 0 too when no start and end
/// among the n best make a valid span. The null score is given beside it. A model directory that is
/// a span model (its checkpoint holds a span head, `qa_outputs`, as a fully fine-tuned
/// BertForQuestionAnswering does) answers the requests that name no task as questions in the same
/// way, with the windows and answers the directory records (read_model_directory_record()), else
/// SQuAD's (windows of all its positions when it has fewer than 384), as `eval`/`predict --task
/// squad` run it.
///
/// Thread safety: the const members change no state, neither the model's (no active task is set
/// per request: each batch carries its own TaskRouting) nor LibTorch's global state, so any
/// number of threads may call predict() on one Predictor at once and each gets what a serial call
/// would give. add_task() and remove_task() may run at the same time as those calls: they wait
/// for the calls in flight to finish and hold new ones back until the task set has changed.
/// Construction, moving and destruction must not overlap with any call.
class Predictor {
 public:
  /// Loads the base from `model_directory` and each pack of `adapter_packs` as a task named as
  /// the pack (a pack trained stacked on others after them, whatever their order). Throws Error
  /// for a malformed directory or pack, two packs with one name, or a stacked pack without the
  /// packs below it.
  explicit Predictor(const std::string& model_directory,
                     const std::vector<std::string>& adapter_packs = {},
                     PredictorOptions options = PredictorOptions{});
  ~Predictor();
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;

  /// The tasks, in the order they were loaded: the packs' order, except that fusions and stacked
  /// packs come after the adapters they build on; then those added.
  std::vector<std::string> tasks() const;
  /// Whether `task` is one of tasks().
  bool has_task(const std::string& task) const;
  /// What task `task` is (Error if there is none).
  TaskInfo task_info(const std::string& task) const;
  /// What the base is, and what the requests that name no task get.
  BaseInfo base_info() const;
  /// The whole as `GET /v1/model` and `inspect` describe it: base_info().to_json()'s keys, then
  /// "tasks" (tasks()) and "library_version" (version()), as a JSON object.
  std::string describe() const;

  /// Loads another pack as task `name` (default: the pack's name) while other threads may be
  /// predicting. Returns the task's name. Throws Error as the constructor does, or if the name is
  /// taken, or if the pack was trained stacked on tasks that are not loaded; the Predictor is
  /// then unchanged.
  std::string add_task(const std::string& adapter_pack,
                       const std::optional<std::string>& name = std::nullopt);
  /// Unloads task `name` (Error if there is none, or if another task runs stacked on it) while
  /// other threads may be predicting.
  void remove_task(const std::string& name);
  /// The head `task` answers with (std::nullopt: the model directory's). The reference is valid
  /// until the task is removed. Error for a span task (TaskInfo::span_head), which has none, and
  /// for std::nullopt when the model directory is a span model.
  const HeadConfig& head(const std::optional<std::string>& task) const;
  /// The length `task`'s requests are truncated to.
  int64_t max_length(const std::optional<std::string>& task) const;
  Precision precision() const;
  c10::Device device() const;
  /// What loading noticed, e.g. a pack trained on other base weights; one line each.
  std::vector<std::string> warnings() const;
  /// Bytes of the shared base's tensors (its parameters and the model directory's head), as
  /// stored: with bf16 or fp16, the Linear weights take two bytes each.
  int64_t base_bytes() const;
  /// Bytes of task `task`'s own tensors: all that loading its pack added to the model.
  int64_t task_bytes(const std::string& task) const;

  /// Throws the Error predict() would throw for `request` alone: its task is unknown, or it asks
  /// a span task (or a span model directory's own head) without a context (`text_pair`). For
  /// callers that answer a bad request before queueing it (the server).
  void check_request(const TaskRequest& request) const;
  /// Predictions for `inputs`, all for `task`, in input order. Throws Error for an unknown task,
  /// or an input without a context (`text_pair`) for a span task.
  std::vector<Prediction> predict(const std::optional<std::string>& task,
                                  const std::vector<TextInput>& inputs) const;
  /// Predictions for a mix of tasks, in request order; each equals what its task gives the
  /// example alone (to float rounding). Throws Error naming the request of an unknown task.
  std::vector<Prediction> predict(const std::vector<TaskRequest>& requests) const;
  /// The same, shared out over the processes of `group` (distributed/process_group.h; null:
  /// alone): every process calls it with the same requests, computes every world_size-th batch
  /// and gets all the predictions, each as one process alone computes it. `group` must have been
  /// joined for this Predictor's device. A collective: see ProcessGroup.
  std::vector<Prediction> predict(const std::vector<TaskRequest>& requests,
                                  ProcessGroup* group) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace adaptertune
