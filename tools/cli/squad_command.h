#pragma once
// `train`, `eval` and `predict` with `--task squad`: extractive question answering on SQuAD
// v1.1 / v2.0 JSON files, with a span head (BertForQuestionAnswering).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "adaptertune/fusion_config.h"
#include "adaptertune/tasks/squad_features.h"
#include "adaptertune/training/trainer.h"
#include "common.h"

namespace adaptertune {
class Predictor;
}

namespace adaptertune::cli {

/// --doc-stride, --max-query-length, --n-best, --max-answer-length, --null-score-threshold into
/// `choice` (a flag not given: what the span pack records, else QuestionAnsweringOptions'
/// defaults); `from_pack`: the command (eval, predict, serve) takes what a span pack records
/// before the defaults.
void add_squad_options(CLI::App* cmd, QuestionAnsweringOverrides& choice, bool from_pack);

/// Error naming the SQuAD flags given in `choice` (--doc-stride, ...), for a command that
/// answers no questions (`command`: "train --task SST-2", ...).
void refuse_squad_flags(const QuestionAnsweringOverrides& choice, const std::string& command);
/// refuse_squad_flags() when `predictor` answers no questions: none of its tasks is a span pack
/// and its base is no span model directory (`command`: "predict on JSON lines", ...).
void refuse_squad_flags_without_spans(const QuestionAnsweringOverrides& choice,
                                      const Predictor& predictor, const std::string& command);

/// Whether --task names SQuAD ("squad", any case).
bool is_squad_task(const std::string& name);

/// The tokens per window a SQuAD run takes without --max-length (BERT's SQuAD setting, as the
/// library's default windows).
constexpr int64_t kSquadMaxLength = SquadFeatureOptions{}.max_length;

/// What `train --task squad` takes from the train command's flags.
struct SquadTrainRequest {
  std::string model;
  /// --random-init: BERT's random initialisation of the model's config (with --train full).
  bool random_init = false;
  /// --train-examples: train on the first N questions of the training file (0: all).
  int64_t train_examples = 0;
  AdapterChoice adapter;
  std::optional<std::string> adapter_name;
  /// Packs whose adapters the new one trains on top of (`stacked_on`, bottom first): loaded
  /// frozen, without their heads.
  std::vector<std::string> adapter_packs;
  std::vector<std::string> stacked_on;
  /// --fuse: the packs' adapters a fusion trains on (with `fusion`, its config) in place of a
  /// new adapter; empty: none.
  std::vector<std::string> fused;
  std::optional<FusionConfig> fusion;
  TrainChoice train;
  /// What `train` asks to train, from requested_policy() (its pooler resolved once loaded).
  FreezePolicy requested;
  /// --max-length as given (default: kSquadMaxLength, at most the model's positions).
  std::optional<int64_t> max_length;
  /// Device, precision and schedule already resolved; max_length is resolved from the model.
  TrainerOptions trainer;
  std::string train_file, dev_file;
  QuestionAnsweringOverrides squad;
  /// Data-parallel training, and `--device` as given (a CUDA device without an index becomes
  /// each process's own).
  DistributedChoice distributed;
  std::string device_flag;
};
int run_train_squad(SquadTrainRequest request);

/// What `eval` / `predict --task squad` take.
struct SquadUseRequest {
  std::string model;
  std::vector<std::string> adapter_packs;
  std::string file;
  std::optional<int64_t> max_length;
  int64_t batch_size = 128;
  std::string device = "auto";
  std::optional<std::string> precision;
  /// predict: where the answers go (a JSON object id → answer, the official scripts' input);
  /// empty: stdout.
  std::string out;
  QuestionAnsweringOverrides squad;
  /// A group of processes, each running its share of the windows; rank 0 prints or writes.
  DistributedChoice distributed;
};
int run_eval_squad(const SquadUseRequest& request);
int run_predict_squad(const SquadUseRequest& request);

}  // namespace adaptertune::cli
