#pragma once
/// @file question_answering_trainer.h
/// Fine-tuning for extractive question answering (SQuAD v1.1 / v2.0), with adapters or fully.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/precision.h"
#include "adaptertune/tasks/squad.h"
#include "adaptertune/tasks/squad_features.h"
#include "adaptertune/text/tokenizer.h"
#include "adaptertune/training/freeze_policy.h"
#include "adaptertune/training/trainer.h"

namespace adaptertune {

/// What evaluate_squad() found.
struct SquadEvalResult {
  /// "exact" and "f1" (percent, as the official scripts report them); for v2.0 data also
  /// "has_answer_exact", "has_answer_f1", "no_answer_exact", "no_answer_f1".
  std::map<std::string, double> metrics;
  /// Each question's answer, by id.
  std::map<std::string, SquadAnswerPrediction> answers;
};

/// Runs `model` on `device` (eval mode, no gradients; the model is moved there first and stays
/// there) over the windows of `data` and extracts each
/// question's answer (extract_squad_answers()); no-answer predictions are allowed when the options
/// allow them or the data is v2.0 (SquadAnswerOptions::for_data()). Needs no gold answers. In a
/// `group` (every process calls it with the same model and data) each process runs its share of the
/// batches of windows and every process gets every answer, as one process finds them.
std::map<std::string, SquadAnswerPrediction> predict_squad(
    BertForQuestionAnswering& model, const SquadDataset& data, const Tokenizer& tokenizer,
    const QuestionAnsweringOptions& options, int64_t batch_size, c10::Device device,
    Precision precision, ProcessGroup* group = nullptr);

/// predict_squad() on windows already made from `data` (make_squad_features()), for a caller
/// that runs the same data more than once; in a `group`, shared out alike.
std::map<std::string, SquadAnswerPrediction> predict_squad(
    BertForQuestionAnswering& model, const SquadDataset& data, const SquadFeatures& features,
    const Tokenizer& tokenizer, const SquadAnswerOptions& answers, int64_t batch_size,
    c10::Device device, Precision precision, ProcessGroup* group = nullptr);

/// predict_squad(), scored with squad_evaluate(); in a `group`, shared out as predict_squad()
/// shares it (every process gets the scores).
SquadEvalResult evaluate_squad(BertForQuestionAnswering& model, const SquadDataset& data,
                               const Tokenizer& tokenizer, const QuestionAnsweringOptions& options,
                               int64_t batch_size, c10::Device device, Precision precision,
                               ProcessGroup* group = nullptr);
/// evaluate_squad() on windows already made from `data`.
SquadEvalResult evaluate_squad(BertForQuestionAnswering& model, const SquadDataset& data,
                               const SquadFeatures& features, const Tokenizer& tokenizer,
                               const SquadAnswerOptions& answers, int64_t batch_size,
                               c10::Device device, Precision precision,
                               ProcessGroup* group = nullptr);

/// Fine-tunes a BertForQuestionAnswering on SQuAD-style data as the Trainer does a classifier:
/// the same TrainerOptions (AdamW, schedule, accumulation, clipping, autocast through the shared
/// TrainingEngine; evaluation on dev every `eval_every` steps and at each epoch end; the best
/// model by F1 kept in `output_dir/best`, an adapter pack with the span head when an adapter
/// trains (recording the windows and answer options, with `allow_no_answer` when the dev data is
/// SQuAD v2.0), else a model directory with the tokenizer's files; early stopping; checkpoints with
/// exact resume; Ctrl-C), and the same run directory (run.json, metrics.jsonl, results.json).
/// Training windows whose answer lies outside them learn to point at [CLS], as in BERT's code.
/// In a process group (TrainerOptions::process_group) it trains as the Trainer does, each process
/// on its slice of every batch of windows, padded as the whole batch is (the span loss reads
/// every position, padding included), so that a group scores every window as one process does.
///
/// AdapterDrop's frozen-layer cache (TrainerOptions::cache_frozen_layers) keeps each window at the
/// longest window's length, computed once with that padding, for the same reason: a batch from
/// the cache then has the padded positions' states a batch computed whole has.
///
/// Not (yet) for span models: several tasks in one run (TrainerOptions::sampling_temperature and
/// last_layer_first_position are refused, naming the option).
class QuestionAnsweringTrainer {
 public:
  /// `tokenizer` (which must outlive train()) encodes the questions and contexts. With an
  /// adapter, the policy must train it (check_policy_trains_adapter()). `adapter` may name a
  /// fusion (BertModelImpl::add_fusion(), "a,b"): AdapterFusion's span task, which trains the
  /// fusion layers and the span head on the frozen adapters it fuses, with the fusion's value
  /// regularisation where its config has one, and keeps a fusion pack. `stacked_on`: adapters of
  /// the model that `adapter` trains on top of, bottom first, as TrainingTask::stacked_on (MAD-X's
  /// task adapter on a language adapter, `Stack(lang, squad)`): they run below it in training
  /// and evaluation and stay frozen, and the best pack records them.
  QuestionAnsweringTrainer(BertForQuestionAnswering& model, SquadDataset train, SquadDataset dev,
                           FreezePolicy policy, std::optional<std::string> adapter,
                           TrainerOptions options, QuestionAnsweringOptions qa,
                           const Tokenizer& tokenizer, std::vector<std::string> stacked_on = {});
  TrainResult train();

 private:
  BertForQuestionAnswering& model_;
  SquadDataset train_data_, dev_data_;
  FreezePolicy policy_;
  std::optional<std::string> adapter_;
  std::vector<std::string> stacked_on_;
  TrainerOptions options_;
  QuestionAnsweringOptions qa_;
  const Tokenizer& tokenizer_;
};

}  // namespace adaptertune
