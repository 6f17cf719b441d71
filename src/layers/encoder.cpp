#include "adaptertune/layers/encoder.h"

#include <algorithm>

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
                                          const TaskRouting& routing, size_t begin, size_t end,
                                          LastLayerOutput output) {
  torch::Tensor mask = additive_mask;
  end = std::min(end, layers_.size());
  for (size_t i = begin; i < end; ++i) {
    BertLayer& l = layers_[i];
    const bool first_position =
        output == LastLayerOutput::kFirstPosition && i + 1 == layers_.size();
    // Parallel branches replicate the batch at their first own computation; the mask follows.
    if (mask.defined() && mask.size(0) != hidden.size(0)) {
      mask = mask.repeat({hidden.size(0) / mask.size(0), 1, 1, 1});
    }
    if (gradient_checkpointing_ && at::GradMode::is_enabled()) {
      std::shared_ptr<BertLayerImpl> layer = l.ptr();
      hidden = detail::checkpointed(
          *layer, hidden, [layer, mask, routing, first_position](const torch::Tensor& x) {
            return first_position ? layer->forward_first_position(x, mask, routing)
                                  : layer->forward(x, mask, routing);
          });
    } else {
      hidden = first_position ? l->forward_first_position(hidden, mask, routing)
                              : l(hidden, mask, routing);
    }
  }
  if (output == LastLayerOutput::kFirstPosition && hidden.size(1) != 1) {
    hidden = hidden.narrow(1, 0, 1);  // the last layer was not among them
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
