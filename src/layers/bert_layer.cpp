#include "adaptertune/layers/bert_layer.h"

namespace adaptertune {

BertLayerImpl::BertLayerImpl(const BertConfig& config) {
  attention = register_module("attention", BertAttention(config));
  intermediate = register_module("intermediate", BertIntermediate(config));
  output = register_module(
      "output", SublayerOutput(SublayerOutputOptions(config.intermediate_size, config.hidden_size)
                                   .dropout(config.hidden_dropout_prob)
                                   .layer_norm_eps(config.layer_norm_eps)));
}

torch::Tensor BertLayerImpl::forward(const torch::Tensor& hidden,
                                     const torch::Tensor& additive_mask,
                                     const TaskRouting& routing) {
  torch::Tensor attended = attention(hidden, additive_mask, routing);
  return output(intermediate(attended), attended, routing);
}

torch::Tensor BertLayerImpl::forward_first_position(const torch::Tensor& hidden,
                                                    const torch::Tensor& additive_mask,
                                                    const TaskRouting& routing) {
  torch::Tensor attended = attention->forward_first_position(hidden, additive_mask, routing);
  return output(intermediate(attended), attended, routing);
}

}  // namespace adaptertune
