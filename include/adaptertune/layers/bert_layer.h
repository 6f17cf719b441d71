#pragma once
/// @file bert_layer.h
/// One transformer encoder layer.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_config.h"
#include "adaptertune/layers/attention.h"
#include "adaptertune/layers/feed_forward.h"
#include "adaptertune/layers/sublayer_output.h"

namespace adaptertune {

/// `attention` → `intermediate` → `output`, as Hugging Face's `BertLayer` (post-LayerNorm).
class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertConfig& config);
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask = {},
                        const TaskRouting& routing = TaskRouting::base());
  /// forward()'s output at the first position only, [batch, 1, hidden]: the attention's query and
  /// everything after it for that position, from the keys and values of every position.
  torch::Tensor forward_first_position(const torch::Tensor& hidden,
                                       const torch::Tensor& additive_mask = {},
                                       const TaskRouting& routing = TaskRouting::base());

  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  SublayerOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

}  // namespace adaptertune
