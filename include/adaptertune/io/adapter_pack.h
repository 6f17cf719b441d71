#pragma once
/// @file adapter_pack.h
/// Adapter packs: the trained part of a model, to share and to load onto a base.
///
/// A pack is a directory in AdapterHub's layout:
/// - `adapter_config.json`: `{"config": <AdapterConfig>, "name", "hidden_size", "model_type",
///   "model_class", "version", "adaptertune": {"base_config_sha256", "base_weights_sha256",
///   "train_mode", "layer_norms", "pooler", "max_length", "precision", "stacked_on"}}`. When the
///   adapter has an explicit `adapter_size`, `reduction_factor` is written as the factor from
///   which AdapterHub rebuilds that size (`hidden_size // reduction_factor`);
/// - `adapter.safetensors`: the adapter weights under AdapterHub's names
///   (`bert.encoder.layer.{i}.output.adapters.{name}.adapter_down.0.weight`, …) and the task's
///   own copies of base tensors, under the base tensors' names: every LayerNorm
///   (`bert.….LayerNorm.{weight,bias}`) when the task trained them, and the pooler
///   (`bert.pooler.dense.*`) when it trained it or when the base checkpoint had none (its random
///   initialisation then differs on every load);
/// - `head_config.json` and `model_head.safetensors`: the task head (`classifier.*`), saved by
///   default.
///
/// A fusion (BertModelImpl::add_fusion()) is saved in AdapterHub's fusion layout instead:
/// `adapter_fusion_config.json` (the same document, with a FusionConfig as `config` and the
/// fusion's name, "a,b,c", as `name`) and `model_adapter_fusion.safetensors` (the fusion layers,
/// `bert.encoder.layer.{i}.output.adapter_fusion_layer.a,b,c.query.weight`, …, and the fusion
/// task's LayerNorm and pooler copies under the base tensors' names), with its head as above.
/// The fused adapters are not in it: they are packs of their own, loaded first.

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "adaptertune/adapter_config.h"
#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/fusion_config.h"
#include "adaptertune/precision.h"
#include "adaptertune/tasks/squad_features.h"

namespace adaptertune {

/// How save_adapter_pack() writes a pack.
struct AdapterPackOptions {
  /// Save the task head with the adapter (the default: a pack without its head cannot predict).
  bool include_head = true;
  /// Recorded as `train_mode` (what trained: "adapters", "adapters-head", …); informational.
  std::string train_mode = "adapters";
  /// Recorded as `model_name` (e.g. the base model's directory or hub name).
  std::string base_model_name;
  /// The maximum sequence length the adapter was trained with (0: not recorded). Recorded so
  /// that evaluation and prediction default to it.
  int64_t max_length = 0;
  /// The precision the adapter was trained in, recorded for the same reason.
  std::optional<Precision> precision;
  /// The adapters this one was trained on top of, bottom first (TrainingTask::stacked_on),
  /// recorded as `stacked_on` so that evaluation, prediction and serving run the pack in the
  /// Stack it learnt in. Empty: trained alone (not recorded). AdapterHub's layout has no place
  /// for it: a Python user names the Stack.
  std::vector<std::string> stacked_on;
  /// A span head's windows and answer extraction, recorded as `question_answering`
  /// (`doc_stride`, `max_query_length`, `n_best`, `max_answer_length`, `null_score_threshold`,
  /// `allow_no_answer`; the windows' length is `max_length`) so that evaluation, prediction and
  /// serving run the pack as its run evaluated it. std::nullopt: not recorded.
  /// `answers.allow_no_answer` (absent in older packs: false): the pack answers nothing where the
  /// null score wins, served (Predictor) or on any data (predict_squad(), which allows it on
  /// SQuAD v2.0 data in any case).
  std::optional<QuestionAnsweringOptions> question_answering;
};

/// What a run that keeps a model directory (full or head-only fine-tuning: `train --train full`,
/// for a span task too) records there of how its model runs, as a pack records it:
/// `config.json`'s `adaptertune` key, `{"max_length", "precision", "question_answering"}`
/// (question_answering_record_json()). Hugging Face keeps a config key it does not know as an
/// attribute of the config, so the directory loads there as before; BertConfig leaves the key to
/// read_model_directory_record(). `eval`, `predict` and a Predictor default to it as to a pack's.
struct ModelDirectoryRecord {
  /// The length it trained and evaluated with (a span model's windows' length); 0: not recorded.
  int64_t max_length = 0;
  /// A span model's windows and answer options, with `features.max_length` set to `max_length`
  /// (std::nullopt: not recorded).
  std::optional<QuestionAnsweringOptions> question_answering;
  /// The autocast precision it trained with (std::nullopt: not recorded).
  std::optional<Precision> precision;
  /// The windows and answer options this run ran with on `base`: `question_answering` (else the
  /// defaults of QuestionAnsweringOptions), with windows of `max_length` tokens when given (and
  /// then, when that is not the recorded length, the default stride for them: a recorded stride
  /// belongs to its windows), else the recorded `max_length`, else SQuAD's 384 or all of
  /// `base`'s positions when it has fewer.
  /// Not validated, so that a caller may change them first (SquadFeatureOptions::validate()).
  QuestionAnsweringOptions span_options(const BertConfig& base,
                                        std::optional<int64_t> max_length = std::nullopt) const;
};

/// What a pack holds, read from its JSON files without touching a model.
struct AdapterPackInfo {
  std::string name;
  /// The adapter's config (default for a fusion pack).
  AdapterConfig config;
  /// Set for a fusion pack: its config, and the adapters it fuses (its name split at ',').
  std::optional<FusionConfig> fusion;
  std::vector<std::string> fused;
  int64_t hidden_size = 0;
  bool layer_norms = false;
  /// Whether the pack carries the pooler.
  bool pooler = false;
  std::string train_mode;
  /// What the adapter was trained with (0 / nullopt when the pack does not record it).
  int64_t max_length = 0;
  std::optional<Precision> precision;
  /// The adapters it was trained on top of, bottom first (empty: alone); they are packs of
  /// their own, loaded first.
  std::vector<std::string> stacked_on;
  /// The adapters the pack runs in, bottom first: `stacked_on`, then `name` (the names of a
  /// Stack; only `name` for a pack trained alone).
  std::vector<std::string> trained_stack() const;
  /// Those of `stacked_on` that `loaded` does not name, in order: empty when every adapter the
  /// pack was trained on top of is there.
  std::vector<std::string> missing_below(const std::vector<std::string>& loaded) const;
  /// The pack's sequence head (classification or regression), when it has one.
  std::optional<HeadConfig> head;
  /// Whether the pack's head is a span head (question answering, `qa_outputs`) instead.
  bool span_head = false;
  /// What a span head's pack records of its windows and answers (AdapterPackOptions), with
  /// `features.max_length` set to `max_length` (its default when that is not recorded).
  std::optional<QuestionAnsweringOptions> question_answering;
  /// What the pack records of how it runs (`max_length`, `question_answering`, `precision`), as a
  /// model directory records it.
  ModelDirectoryRecord record() const;
  /// The windows and answer options a span pack runs with on `base`: record().span_options().
  QuestionAnsweringOptions span_options(const BertConfig& base,
                                        std::optional<int64_t> max_length = std::nullopt) const;
  std::string base_model_name;
  std::string base_config_sha256;
  std::string base_weights_sha256;
};

/// Reads `directory/adapter_config.json`, or `adapter_fusion_config.json` for a fusion pack (and
/// `head_config.json` when present).
AdapterPackInfo read_adapter_pack_info(const std::string& directory);

/// The record of `directory/config.json` (an empty one when the directory records none, as a
/// base or a directory another tool wrote). Throws Error naming the file and the key when the
/// record is malformed.
ModelDirectoryRecord read_model_directory_record(const std::string& directory);
/// Adds `record` to `directory/config.json` (written atomically; its other keys are kept).
void write_model_directory_record(const std::string& directory, const ModelDirectoryRecord& record);

/// `qa` as a span pack records it (`adaptertune.question_answering`, see AdapterPackOptions): a
/// JSON object of `doc_stride`, `max_query_length`, `n_best`, `max_answer_length`,
/// `null_score_threshold` and `allow_no_answer` (the windows' length is recorded apart).
std::string question_answering_record_json(const QuestionAnsweringOptions& qa);

/// Throws Error, naming the fusion pack, unless every fusion among `infos` (read from
/// `directories`, in the same order) finds the adapters it fuses among the other packs: the check
/// a tool makes before it loads a base for a set of packs.
void check_fused_adapters(const std::vector<AdapterPackInfo>& infos,
                          const std::vector<std::string>& directories);

/// The order in which to load packs described by `infos`, as indices: every pack after those
/// among `infos` it needs (a fusion the adapters it fuses, a stacked pack those it was stacked
/// on, adapters or a fusion), otherwise adapter packs before fusion packs, each as given.
std::vector<size_t> pack_load_order(const std::vector<AdapterPackInfo>& infos);

/// Writes task `adapter_name` of `model` (an adapter, or a fusion in the fusion layout) to
/// `directory`, creating it: the adapters, the task's
/// head (its own, else the model's; unless `options.include_head` is false) and its copies of
/// the LayerNorms and the pooler when it has them (under the base tensors' names), so that the
/// pack loaded onto the base it records reproduces the task's logits. Every file is written
/// atomically, the config last.
void save_adapter_pack(BertForSequenceClassification& model, const std::string& adapter_name,
                       const std::string& directory,
                       const AdapterPackOptions& options = AdapterPackOptions{});
/// The same for a span model: the head is its `qa_outputs`, described in head_config.json as
/// `"head_type": "question_answering"`, `"model_class": "BertForQuestionAnswering"`.
void save_adapter_pack(BertForQuestionAnswering& model, const std::string& adapter_name,
                       const std::string& directory,
                       const AdapterPackOptions& options = AdapterPackOptions{});

/// What load_adapter_pack() did.
struct AdapterPackLoad {
  AdapterPackInfo info;
  /// The name the adapter has in the model (the pack's, or `load_as`).
  std::string adapter_name;
  bool head_loaded = false;
  /// Human-readable warnings, e.g. that the pack was trained on another base (with both
  /// identities). Empty when all is well.
  std::vector<std::string> warnings;
};

/// Adds the pack as task `load_as` (default: the pack's name) of `model`: its adapters, its own
/// copies of the LayerNorms and the pooler when the pack carries them, and its own head (when
/// the pack has one and `load_head`; otherwise the task runs the model's head), and makes it
/// active. The shared base is not written, so any number of packs, with any heads, load onto
/// one model. A fusion pack needs the adapters it fuses loaded first (Error naming the missing
/// ones otherwise) and keeps its name (`load_as`, if given, must be that name). An AdapterHub flex
/// head (`heads.<name>.<i>.*`) loads as the static layout that computes the same (a classifier,
/// with a pooler of the task's own for AdapterHub's default 2-layer head), and one with no such
/// layout is an Error naming its settings (its adapter loads with `load_head` false). Errors name
/// the file and tensor; the model is left unchanged when a file is malformed.
AdapterPackLoad load_adapter_pack(BertForSequenceClassification& model,
                                  const std::string& directory,
                                  const std::optional<std::string>& load_as = std::nullopt,
                                  bool load_head = true);
/// The same for a span model, whose one span head (`qa_outputs`) every task runs: a pack's span
/// head replaces it. A pack with a sequence head loads only without its head (Error otherwise),
/// and a span head does not load into a classifier.
AdapterPackLoad load_adapter_pack(BertForQuestionAnswering& model, const std::string& directory,
                                  const std::optional<std::string>& load_as = std::nullopt,
                                  bool load_head = true);

/// The base weights' identity as packs record it, base_weights_sha256() for each choice of
/// `layer_norms` and `pooler`, taken at one moment: for checking packs against a model whose
/// weights have since changed representation but not meaning (a Predictor stores its frozen
/// weights in bf16, store_frozen_linear_weights(), which changes what base_weights_sha256()
/// computes from them).
class BaseWeightsIdentity {
 public:
  /// All four hashes of `model`'s weights as they are now, in one pass over them.
  static BaseWeightsIdentity of(torch::nn::Module& model);
  /// base_weights_sha256(model, layer_norms, pooler) at the time of of().
  const std::string& sha256(bool layer_norms, bool pooler) const;

 private:
  std::array<std::string, 4> sha256_;
};

/// load_adapter_pack() that checks the pack's `base_weights_sha256` against `identity` instead
/// of hashing the model's weights as they are now.
AdapterPackLoad load_adapter_pack(BertForSequenceClassification& model,
                                  const std::string& directory, const BaseWeightsIdentity& identity,
                                  const std::optional<std::string>& load_as = std::nullopt,
                                  bool load_head = true);
/// The same for a span model.
AdapterPackLoad load_adapter_pack(BertForQuestionAnswering& model, const std::string& directory,
                                  const BaseWeightsIdentity& identity,
                                  const std::optional<std::string>& load_as = std::nullopt,
                                  bool load_head = true);

/// SHA-256 (hex) of the base config's canonical JSON: the `base_config_sha256` of a pack.
std::string base_config_sha256(const BertConfig& config);

/// SHA-256 (hex) over the shared base weights a pack does not carry (every parameter except
/// tasks' tensors, heads and, when `layer_norms` / `pooler`, the LayerNorms / the pooler), by
/// name in sorted order, as float32. With both false it is the whole base's identity.
std::string base_weights_sha256(torch::nn::Module& model, bool layer_norms, bool pooler = false);

}  // namespace adaptertune
