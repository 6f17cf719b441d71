#include "adaptertune/layers/encoder.h"

namespace adaptertune {

BertEncoderImpl::BertEncoderImpl(const BertConfig& config) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    layers_.emplace_back(config);
    layer->push_back(layers_.back());
  }
}

torch::Tensor BertEncoderImpl::forward(torch::Tensor hidden, const torch::Tensor& additive_mask,
                                       const TaskRouting& routing) {
  for (auto& l : layers_) hidden = l(hidden, additive_mask, routing);
  return hidden;
}

BertLayer BertEncoderImpl::at(size_t index) const {
  return layers_.at(index);
}

}  // namespace adaptertune
