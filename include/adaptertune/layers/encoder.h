#pragma once
/// @file encoder.h
/// The stack of encoder layers.

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_config.h"
#include "adaptertune/layers/bert_layer.h"

namespace adaptertune {

/// What the last layer of the encoder computes.
enum class LastLayerOutput {
  kAllPositions,  ///< every position: [batch, seq, hidden]
  /// The first position only, [batch, 1, hidden]: all that a pooler (sequence classification)
  /// reads. The last layer then projects one query per example instead of one per token and runs
  /// its feed-forward layer and adapters on one position: of a 4-layer encoder about a fifth of
  /// the work of a pass. The same values at that position, up to the order of sums that a
  /// product of fewer rows may take.
  kFirstPosition,
};

/// `num_hidden_layers` BertLayers registered as `layer.0`, `layer.1`, … (Hugging Face names).
class BertEncoderImpl : public torch::nn::Module {
 public:
  explicit BertEncoderImpl(const BertConfig& config);
  torch::Tensor forward(torch::Tensor hidden, const torch::Tensor& additive_mask = {},
                        const TaskRouting& routing = TaskRouting::base());
  /// Layers `begin` to `end - 1` only (forward() runs them all). With kFirstPosition the result
  /// is the first position's only ([batch, 1, hidden]): the encoder's last layer computes no
  /// other when it is among them (`end` is size()), and otherwise the result is cut to it.
  torch::Tensor run_layers(torch::Tensor hidden, const torch::Tensor& additive_mask,
                           const TaskRouting& routing, size_t begin, size_t end,
                           LastLayerOutput output = LastLayerOutput::kAllPositions);

  /// The i-th layer.
  BertLayer at(size_t index) const;
  size_t size() const { return layers_.size(); }

  /// Gradient checkpointing (Hugging Face's `gradient_checkpointing`): a layer run with gradients
  /// wanted keeps only its input for the backward pass instead of every activation it makes, and
  /// runs again there, with the same dropout masks and autocast, to rebuild them. The gradients
  /// are the same; a step's activation memory drops to the layers' inputs plus one layer's, for
  /// one more forward pass of compute. Off by default; passes without gradients never change.
  void set_gradient_checkpointing(bool enabled) { gradient_checkpointing_ = enabled; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

  /// The finer grain of the same: every layer's attention keeps only its projections' output
  /// for backward, not its probabilities, and computes them again there
  /// (SelfAttentionImpl::set_recompute_probabilities()). The same gradients; at bert-base's shape
  /// (batch 32 x seq 128, float32) 0.28 GB less at a step's peak for 1.03-1.07x the time, but at
  /// the shipped base's shape (seq 64) at most 9 MB less for 1.03-1.15x (docs/benchmarks.md). Off
  /// by default. With layer checkpointing on as well, a layer's second run in backward computes
  /// its attention once, as an ordinary pass does (a checkpoint inside another runs plainly there).
  void set_recompute_attention_probabilities(bool enabled);

  torch::nn::ModuleList layer{nullptr};

 private:
  std::vector<BertLayer> layers_;
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(BertEncoder);

}  // namespace adaptertune
