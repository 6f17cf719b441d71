#pragma once
/// @file hf_checkpoint.h
/// Hugging Face model directories: `config.json` + `model.safetensors` (or its sharded form).

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "adaptertune/bert_config.h"
#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/bert_model.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/parameter_names.h"

namespace adaptertune {

/// What happened when checkpoint tensors were copied into a model.
struct LoadReport {
  /// Model parameters that received a checkpoint tensor.
  std::vector<std::string> loaded;
  /// Model parameters the checkpoint has no tensor for (they keep their initial values).
  std::vector<std::string> missing;
  /// Checkpoint tensors that fit nowhere in the model.
  std::vector<std::string> unexpected;
  /// Checkpoint tensors that are known and deliberately not used: pretraining heads (`cls.*`),
  /// the `position_ids` buffer, a `classifier.*` head when the model has none.
  std::vector<std::string> ignored;

  /// One paragraph for a log: counts, and the names of missing and unexpected tensors.
  std::string summary() const;
  /// Whether any parameter of `group` is missing (e.g. kHead: the checkpoint has no classifier,
  /// kPooler: it has no pooler).
  bool missing_any(ParameterGroup group) const;
  /// Whether the checkpoint holds a span head (`qa_outputs.*`, a BertForQuestionAnswering's) that
  /// the model it was loaded into has no place for.
  bool ignored_span_head() const;
  /// That span head's tensors, kept by load_bert_for_sequence_classification() (empty otherwise),
  /// so that a caller may put the head around the model's BertModel without reading the
  /// checkpoint again (a Predictor serving a span model directory).
  NamedTensors span_head;
  /// Throws an Error naming `source` and the missing tensors unless every missing parameter
  /// belongs to one of `optional_groups` (e.g. {kPooler, kHead}: a bare base checkpoint may lack
  /// a pooler and a task head, never an embedding or encoder tensor).
  void require_all_except(const std::string& source,
                          std::initializer_list<ParameterGroup> optional_groups) const;
};

/// Copies `tensors` into the parameters of `model` with the same names, converting dtype and
/// device. Names are matched as Hugging Face does: a `bert.` prefix may be present on either side,
/// and TF-era LayerNorm names `gamma`/`beta` mean `weight`/`bias`. A shape mismatch is an Error
/// naming `source`, the tensor and both shapes; nothing is copied unless every shape matches.
LoadReport load_state_dict(torch::nn::Module& model, const NamedTensors& tensors,
                           const std::string& source);

/// Reads the weights of a Hugging Face model directory: `model.safetensors`, or the shards that
/// `model.safetensors.index.json` lists (every listed tensor must be in its shard).
NamedTensors read_hf_weights(const std::string& directory);

/// Loads `directory/config.json` and the weights into a BertModel. Embedding and encoder weights
/// must all be present (Error listing the missing ones); a missing pooler is only reported.
BertModel load_bert_model(const std::string& directory, LoadReport* report = nullptr);

/// Loads a BertForSequenceClassification. The head is `head` when given, else read from
/// config.json (`num_labels`, `id2label`, `problem_type`; default: 2 labels). A `classifier.*`
/// in the checkpoint is loaded when its shape fits the head.
BertForSequenceClassification load_bert_for_sequence_classification(
    const std::string& directory, const std::optional<HeadConfig>& head = std::nullopt,
    LoadReport* report = nullptr);

/// A BertForSequenceClassification of `directory`'s config.json (and head, as
/// load_bert_for_sequence_classification() chooses it) with BERT's random initialisation and none
/// of the directory's weights: the baseline that shows what pretraining adds. Draws from
/// LibTorch's global RNG (seed it first to repeat a run).
BertForSequenceClassification init_bert_for_sequence_classification(
    const std::string& directory, const std::optional<HeadConfig>& head = std::nullopt);

/// Loads a BertForQuestionAnswering (`qa_outputs.*` when the checkpoint has it; otherwise the
/// span head starts from BERT's initialisation and the report lists it as missing).
BertForQuestionAnswering load_bert_for_question_answering(const std::string& directory,
                                                          LoadReport* report = nullptr);

/// A BertForQuestionAnswering of `directory`'s config.json with BERT's random initialisation and
/// none of the directory's weights (init_bert_for_sequence_classification()'s baseline for span
/// heads). Draws from LibTorch's global RNG (seed it first to repeat a run).
BertForQuestionAnswering init_bert_for_question_answering(const std::string& directory);

/// Writes `model` (a BertModel, BertForSequenceClassification, BertForQuestionAnswering or
/// BertForMaskedLM) as a Hugging Face directory:
/// `config.json` (with `architectures` and, for a classifier, its head keys) and
/// `model.safetensors` (Hugging Face names, in `dtype`: float32 by default; bfloat16 or float16
/// halve the size and load back as float32). Adapter weights are not part of this layout: save
/// them with save_adapter_pack(). Creates `directory`; each file is written atomically.
void save_pretrained(torch::nn::Module& model, const std::string& directory,
                     torch::ScalarType dtype = torch::kFloat);

}  // namespace adaptertune
