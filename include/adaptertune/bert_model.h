#pragma once
/// @file bert_model.h
/// The BERT encoder with named bottleneck adapters.

#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/adapter_config.h"
#include "adaptertune/adapters/adapter_set.h"
#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/bert_config.h"
#include "adaptertune/layers/embeddings.h"
#include "adaptertune/layers/encoder.h"
#include "adaptertune/layers/pooler.h"

namespace adaptertune {

/// What BertModel::forward() returns.
struct BertModelOutput {
  /// [batch, seq, hidden]
  torch::Tensor last_hidden_state;
  /// [batch, hidden]; undefined when the model has no pooler.
  torch::Tensor pooler_output;
};

/// Turns a [batch, seq] attention mask (1 = token, 0 = padding; any integer, bool or float
/// dtype) into the additive mask that SelfAttention takes: [batch, 1, 1, seq], 0 for tokens and
/// the lowest finite value of `dtype` for padding.
torch::Tensor make_additive_attention_mask(const torch::Tensor& attention_mask,
                                           torch::ScalarType dtype);

/// Hugging Face's `BertModel`: `embeddings`, `encoder`, `pooler`, with the same parameter names,
/// so that `named_parameters()` is the checkpoint's key list.
///
/// Tasks are added by name (AdapterHub's `add_adapter`): each gets bottleneck adapters in every
/// layer and, when it trains them, its own copies of the LayerNorms and the pooler, so that
/// training or loading a task never writes the shared base and tasks never disturb each other.
/// AdapterSet (tasks()) records them and the active one; forward() runs the active task, or
/// several at once by a TaskRouting.
class BertModelImpl : public torch::nn::Module {
 public:
  /// Builds a randomly initialised model (BERT's init: normal(0, initializer_range) weights,
  /// zero biases, unit LayerNorms). Validates `config`.
  explicit BertModelImpl(BertConfig config, bool add_pooling_layer = true);

  /// `input_ids` [batch, seq] int64; `attention_mask` [batch, seq] (undefined = all tokens);
  /// `token_type_ids` [batch, seq] (undefined = all zero), all on the model's device. Runs the
  /// active task (none: the plain base). Throws Error on bad shapes, dtypes or devices and, on
  /// CPU, on ids beyond the vocabulary or the token types. `output` as in forward_routed().
  BertModelOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                          const torch::Tensor& token_type_ids = {},
                          LastLayerOutput output = LastLayerOutput::kAllPositions);
  /// As above, with each example running the task `routing` gives it. Changes no state, so
  /// that threads may call it together on a model in eval mode under a NoGradGuard. Throws
  /// Error for an unknown task or a routing made for another batch size. With
  /// LastLayerOutput::kFirstPosition the last layer computes the first position only, so that
  /// `last_hidden_state` is [batch, 1, hidden]; the pooler's output is the same.
  BertModelOutput forward_routed(const torch::Tensor& input_ids,
                                 const torch::Tensor& attention_mask,
                                 const torch::Tensor& token_type_ids, const TaskRouting& routing,
                                 LastLayerOutput output = LastLayerOutput::kAllPositions);

  /// The hidden states after the embeddings and the lowest `layers` layers, as forward() computes
  /// them for the active task: what a trainer may cache when those layers are frozen and hold
  /// nothing of the task (AdapterDrop's `leave_out`). forward_from() continues from them.
  torch::Tensor lower_hidden_states(const torch::Tensor& input_ids,
                                    const torch::Tensor& attention_mask,
                                    const torch::Tensor& token_type_ids, int64_t layers);
  /// forward() from `hidden`, the output of the lowest `first_layer` layers ([batch, seq, d]);
  /// `attention_mask` is the batch's ([batch, seq], undefined = all tokens); `output` as in
  /// forward_routed().
  BertModelOutput forward_from(const torch::Tensor& hidden, const torch::Tensor& attention_mask,
                               int64_t first_layer,
                               LastLayerOutput output = LastLayerOutput::kAllPositions);

  /// Adds task `name` with adapters in every layer: after attention when `config.mh_adapter`,
  /// after the FFN when `config.output_adapter`. It runs the base's LayerNorms and pooler until
  /// add_layer_norm_copies() / add_pooler_copy(). Throws Error if the name is taken or the
  /// config is invalid. The first task added becomes active.
  void add_adapter(const std::string& name, const AdapterConfig& config);
  /// Adds AdapterFusion over `adapters` (AdapterHub's `add_adapter_fusion(Fuse(...))`): a task
  /// named fusion_name(adapters) ("a,b,c") with a fusion layer at every adapter site of the
  /// fused adapters, which stay tasks of their own. It runs as a task (set_active_adapter(), a
  /// Stack or a routing), with its own LayerNorm and pooler copies and head when it is given
  /// them. Throws Error, changing nothing, for fewer than two adapters, an unknown or repeated
  /// one, a fusion among them, or adapters placed at different sites (AdapterHub fuses only
  /// adapters with the same placement). Returns the fusion's name.
  std::string add_fusion(const std::vector<std::string>& adapters,
                         const FusionConfig& config = FusionConfig::dynamic());
  /// The sum of AdapterFusion's regularisation over fusion `name`'s layers (FusionConfig::
  /// regularization); an undefined tensor when it has none (no value projection, or off).
  torch::Tensor fusion_regularization_loss(const std::string& name) const;
  /// Gives task `name` its own copy of every LayerNorm (the embeddings' one included), from the
  /// base's current values; no-op if it has them.
  void add_layer_norm_copies(const std::string& name);
  /// Gives task `name` its own copy of the pooler, from the base's current values; no-op if it
  /// has one. Throws Error if the model has no pooler.
  void add_pooler_copy(const std::string& name);
  /// Removes task `name`: its adapters and its copies.
  void remove_adapter(const std::string& name);
  /// Runs task `name` (its adapters and copies) in forward(); std::nullopt runs the plain base.
  void set_active_adapter(const std::optional<std::string>& name);
  /// Runs `stack` in forward() (AdapterHub's `model.active_adapters = Stack(...)`): its last
  /// adapter is the active task, whose LayerNorm copies, pooler and head run.
  void set_active_stack(const Stack& stack);
  std::optional<std::string> active_adapter() const { return tasks_.active(); }
  /// Names of the tasks added, in the order they were added.
  std::vector<std::string> adapter_names() const { return tasks_.names(); }
  /// The config task `name` was added with; throws Error if there is none.
  const AdapterConfig& adapter_config(const std::string& name) const;
  /// The tasks, what each owns, and the active one.
  const AdapterSet& tasks() const { return tasks_; }

  const BertConfig& config() const { return config_; }

  /// Whether the pooler's weights came from a checkpoint (true for a model built in memory).
  /// The loaders set it false when the checkpoint had no pooler: such a pooler is initialised at
  /// random on every load, so whatever is trained on top of it must carry it (adapter packs do).
  bool pooler_pretrained() const { return pooler_pretrained_; }
  void set_pooler_pretrained(bool pretrained) { pooler_pretrained_ = pretrained; }

  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
  BertPooler pooler{nullptr};

 private:
  BertConfig config_;
  AdapterSet tasks_;
  bool pooler_pretrained_ = true;
};
TORCH_MODULE(BertModel);

/// BERT's weight init (as Hugging Face's `_init_weights`) applied to every Linear, Embedding and
/// LayerNorm below `module`; `std` is the config's initializer_range. Adapters keep their own init.
void init_bert_weights(torch::nn::Module& module, double std);

}  // namespace adaptertune
