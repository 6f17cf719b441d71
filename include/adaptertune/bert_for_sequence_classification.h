#pragma once
/// @file bert_for_sequence_classification.h
/// BERT with a sequence-level classification or regression head.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_model.h"
#include "adaptertune/head_config.h"

namespace adaptertune {

/// Hugging Face's `BertForSequenceClassification`: `bert` (BertModel), then dropout on the pooled
/// output and `classifier` (Linear hidden → num_labels). Parameter names therefore carry the
/// `bert.` prefix and the head is `classifier.{weight,bias}`, as in Python checkpoints.
///
/// Many tasks on one base: add_task() adds a task (adapters in `bert`) with its own head
/// (`tasks.<name>.classifier`, its own labels or regression). Activating a task
/// (`bert->set_active_adapter(name)`) selects all of it: adapters, its LayerNorm and pooler
/// copies, its head. A task without a head of its own, and the plain base, use `classifier`.
class BertForSequenceClassificationImpl : public torch::nn::Module {
 public:
  BertForSequenceClassificationImpl(const BertConfig& config, const HeadConfig& head);

  /// Logits [batch, num_labels] (regression: [batch, 1]) of the active task. In evaluation
  /// (eval()) the encoder's last layer computes only the first position, all that the pooler
  /// reads (LastLayerOutput::kFirstPosition; set_evaluation_last_layer()); training computes
  /// every position unless set_training_last_layer() says otherwise.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& token_type_ids = {});
  /// The active task's logits from `hidden`, the output of the lowest `first_layer` layers
  /// (BertModelImpl::forward_from()).
  torch::Tensor forward_from(const torch::Tensor& hidden, const torch::Tensor& attention_mask,
                             int64_t first_layer);

  /// One forward pass for a batch whose examples run different tasks: the logits of each group
  /// of `routing` ([rows in the group, that task's num_labels]), in routing.groups() order.
  /// Changes no state (see BertModelImpl::forward_routed()).
  std::vector<torch::Tensor> forward_routed(const torch::Tensor& input_ids,
                                            const torch::Tensor& attention_mask,
                                            const torch::Tensor& token_type_ids,
                                            const TaskRouting& routing);

  /// Cross-entropy over int64 class ids [batch], or mean squared error against float targets
  /// [batch] for regression, as the active task's head says, on the logits' device. Throws Error
  /// on a shape, dtype or device mismatch and, on CPU, on a class id outside the head's labels.
  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& labels) const;

  /// Adds task `name`: its adapters (BertModelImpl::add_adapter()) and a new head for `head`
  /// (BERT's init). Throws Error as add_adapter() does.
  void add_task(const std::string& name, const AdapterConfig& adapter, const HeadConfig& head);
  /// Gives an existing task (e.g. one added with `bert->add_adapter()`) a new head of its own.
  /// Throws Error if there is no such task or it has a head.
  void add_task_head(const std::string& name, const HeadConfig& head);
  /// Removes task `name` with its head.
  void remove_task(const std::string& name);
  bool has_task_head(const std::string& name) const { return head_of_.count(name) > 0; }

  /// What the encoder's last layer computes in evaluation for forward(), forward_from() and
  /// forward_routed(): kFirstPosition (the default) or every position, as a pass that computes
  /// them all does (to compare with one: the benchmark's --all-positions). The logits agree up
  /// to the order of sums that a product of fewer rows may take.
  void set_evaluation_last_layer(LastLayerOutput output) { evaluation_last_layer_ = output; }
  LastLayerOutput evaluation_last_layer() const { return evaluation_last_layer_; }

  /// The same in training: kAllPositions (the default) or kFirstPosition. Only the first
  /// position of the last layer reaches the loss, so the two give the same logits and gradients,
  /// up to the order of sums; kFirstPosition skips most of that layer's work (the keys and
  /// values still cover every position). Dropout then draws its masks over the smaller tensors,
  /// so a seed trains along another path than with every position: the default stays
  /// kAllPositions, which repeats runs made before this choice existed.
  void set_training_last_layer(LastLayerOutput output) { training_last_layer_ = output; }
  LastLayerOutput training_last_layer() const { return training_last_layer_; }

  /// The head `task` runs: its own, else the model's (std::nullopt: the model's).
  const HeadConfig& head_config(const std::optional<std::string>& task) const;
  /// The model's own head (`classifier`).
  const HeadConfig& head_config() const { return head_; }

  BertModel bert{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear classifier{nullptr};
  torch::nn::ModuleDict tasks{nullptr};

 private:
  struct TaskHead {
    HeadConfig config;
    torch::nn::Linear classifier{nullptr};
  };
  torch::Tensor head(const std::optional<std::string>& task, const torch::Tensor& pooled) const;
  // What the last layer computes now, in training or evaluation.
  LastLayerOutput last_layer_output() const;

  HeadConfig head_;
  std::map<std::string, TaskHead> head_of_;
  LastLayerOutput evaluation_last_layer_ = LastLayerOutput::kFirstPosition;
  LastLayerOutput training_last_layer_ = LastLayerOutput::kAllPositions;
};
TORCH_MODULE(BertForSequenceClassification);

}  // namespace adaptertune
