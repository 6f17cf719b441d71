#include "adaptertune/layers/encoder.h"

#include "gradient_checkpoint.h"

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
  return run_layers(std::move(hidden), additive_mask, routing, 0, layers_.size());
}

torch::Tensor BertEncoderImpl::run_layers(torch::Tensor hidden, const torch::Tensor& additive_mask,
                                          const TaskRouting& routing, size_t begin, size_t end) {
  torch::Tensor mask = additive_mask;
  for (size_t i = begin; i < end && i < layers_.size(); ++i) {
    BertLayer& l = layers_[i];
    // Parallel branches replicate the batch at their first own computation; the mask follows.
    if (mask.defined() && mask.size(0) != hidden.size(0)) {
      mask = mask.repeat({hidden.size(0) / mask.size(0), 1, 1, 1});
    }
    if (gradient_checkpointing_ && at::GradMode::is_enabled()) {
      std::shared_ptr<BertLayerImpl> layer = l.ptr();
      hidden = detail::checkpointed(*layer, hidden, [layer, mask, routing](const torch::Tensor& x) {
        return layer->forward(x, mask, routing);
      });
    } else {
      hidden = l(hidden, mask, routing);
    }
  }
  return hidden;
}

void BertEncoderImpl::set_recompute_attention_probabilities(bool enabled) {
  for (BertLayer& each : layers_) each->attention->self->set_recompute_probabilities(enabled);
}

BertLayer BertEncoderImpl::at(size_t index) const {
  return layers_.at(index);
}

}  // namespace adaptertune
