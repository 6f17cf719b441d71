#pragma once
/// @file freeze_policy.h
/// Which parameters train, and a report of what that means in numbers.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "adaptertune/parameter_names.h"

namespace adaptertune {

class BertModelImpl;
class BertForSequenceClassificationImpl;
class BertForQuestionAnsweringImpl;

/// What a fine-tune updates.
enum class TrainMode {
  /// Houlsby et al.: adapters, every LayerNorm and the head; the rest frozen. The default.
  kAdapters,
  /// AdapterHub's default: adapters and the head only.
  kAdaptersAndHead,
  /// Full fine-tuning: everything.
  kFull,
  /// Only the task head (a linear probe).
  kHead,
  /// Houlsby et al.'s fine-tuning baseline: the top `top_layers` encoder layers (their attention,
  /// feed-forward and LayerNorms), the pooler and the head; the embeddings and lower layers
  /// frozen.
  kTopLayers,
};

/// Decides which parameters train. The one place that policy lives: the trainer, the CLI and the
/// reports all ask it.
struct FreezePolicy {
  TrainMode mode = TrainMode::kAdapters;
  /// Also train the pooler (useful when the base's pooler was never trained).
  bool train_pooler = false;
  /// TrainMode::kTopLayers: how many of the top encoder layers train (at least 1).
  int64_t top_layers = 0;

  /// Whether parameters of `group` train under this policy, wherever they are. Under kTopLayers
  /// that is the pooler and the head; attention, feed-forward and LayerNorm parameters train
  /// there only in the top layers (trains_parameter()).
  bool trains(ParameterGroup group) const;
  /// Throws Error unless the policy fits a model of `num_layers` encoder layers (kTopLayers:
  /// top_layers from 1 to num_layers).
  void check_fits(int64_t num_layers) const;
  /// Whether the parameter called `name`, of a model with `num_layers` encoder layers, trains.
  bool trains_parameter(const std::string& name, int64_t num_layers) const;
  /// "adapters", "adapters-head", "full", "head", or "top-k"/"top-N" (kTopLayers; "top-N" also
  /// sets top_layers to N); throws Error otherwise.
  static FreezePolicy from_name(const std::string& name);
  /// As from_name() reads it; kTopLayers is "top-N" ("top-k" while top_layers is unset).
  std::string name() const;
};

/// Throws Error unless `policy` trains adapter `adapter_name` (TrainMode::kAdapters or
/// kAdaptersAndHead): full or head-only training would freeze it, and the model directory such
/// runs keep cannot hold adapters, so the adapter would be lost.
void check_policy_trains_adapter(const FreezePolicy& policy, const std::string& adapter_name);

/// The default of FreezePolicy::train_pooler for a base: on when its pooler did not come from
/// its checkpoint (BertModelImpl::pooler_pretrained(), e.g. a base pretrained by masked LM
/// only), since a random pooler would otherwise sit frozen between the encoder and the head.
bool default_train_pooler(const BertModelImpl& base);

/// Sets `requires_grad` on every parameter of `model` as `policy` says, so that frozen tensors get
/// no gradient computed at all. Returns the number of trainable parameters (elements).
///
/// With `task`, only that task's own tensors train (its adapters, its LayerNorm and pooler
/// copies, its head; see parameter_task()), as the policy's groups say: the shared base and
/// every other task stay frozen. Without, only tensors of no task train (the base and the
/// model's own head: full or head-only training); a policy that trains adapters then throws
/// Error, since it must name the task whose adapters train.
int64_t apply_freeze_policy(torch::nn::Module& model, const FreezePolicy& policy,
                            const std::optional<std::string>& task = std::nullopt);

/// Readies task `task` of `model` to train under `policy` without touching the shared base:
/// gives it its own LayerNorms when the policy trains LayerNorms, its own pooler when the
/// policy trains the pooler or the base's pooler did not come from a checkpoint, and a head of
/// its own (shaped like the model's) when it has none; then applies the policy to that task.
/// Returns the number of trainable parameters. Throws Error unless the policy trains adapters
/// (check_policy_trains_adapter()) and the task exists.
int64_t prepare_task_training(BertForSequenceClassificationImpl& model, const std::string& task,
                              const FreezePolicy& policy);

/// The same for a span model: the task gets its own LayerNorms when the policy trains them, and
/// trains the model's span head (`qa_outputs`, which every task of a span model runs) when the
/// policy trains heads.
int64_t prepare_task_training(BertForQuestionAnsweringImpl& model, const std::string& task,
                              const FreezePolicy& policy);

/// A multi-task run's form of prepare_task_training(): readies each of `tasks` as that does one,
/// then makes all of their own tensors trainable together (the base and any other task stay
/// frozen). Throws Error as prepare_task_training() does, or when `tasks` is empty or names a
/// task twice.
int64_t prepare_task_training(BertForSequenceClassificationImpl& model,
                              const std::vector<std::string>& tasks, const FreezePolicy& policy);

/// The parameters with `requires_grad`, in registration order: what the optimizer should see.
std::vector<torch::Tensor> trainable_parameters(const torch::nn::Module& model);

/// Parameter counts per group.
struct ParameterReport {
  struct Row {
    ParameterGroup group;
    int64_t total = 0;
    int64_t trainable = 0;
  };
  /// One row per group in all_parameter_groups() order, groups with no parameters included.
  std::vector<Row> rows;

  int64_t total() const;
  int64_t trainable() const;
  /// Parameters of `group`.
  int64_t count(ParameterGroup group) const;
  /// The shared base: every parameter but adapters, heads and tasks' copies.
  int64_t base() const { return base_parameters; }
  /// Parameters owned by a task (adapters, LayerNorm and pooler copies, task heads).
  int64_t task_parameters = 0;
  int64_t base_parameters = 0;
  /// A table with total, trainable and trainable % per group and overall.
  std::string to_table() const;
  /// `{"total":…, "trainable":…, "trainable_percent":…, "base":…, "adapter":…, "head":…,
  /// "groups": {"embeddings": {"total":…, "trainable":…}, …}}`.
  std::string to_json_string() const;
};

/// Counts the parameters of `model` (their real tensors) per group. With `task`, counts what
/// that one task runs: the shared base, the task's own tensors and its head (its own, else the
/// model's), and for a fusion the adapters it fuses; other tasks' tensors and a model head it
/// does not use are left out.
ParameterReport parameter_report(const torch::nn::Module& model,
                                 const std::optional<std::string>& task = std::nullopt);

}  // namespace adaptertune
