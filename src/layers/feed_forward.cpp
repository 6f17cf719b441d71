#include "adaptertune/layers/feed_forward.h"

#include "linear.h"

namespace adaptertune {

BertIntermediateImpl::BertIntermediateImpl(const BertConfig& config)
    : activation_(parse_activation(config.hidden_act, "BertConfig: 'hidden_act'")) {
  dense = register_module("dense", torch::nn::Linear(config.hidden_size, config.intermediate_size));
}

torch::Tensor BertIntermediateImpl::forward(const torch::Tensor& hidden) {
  return linear_activation(dense, hidden, activation_);
}

}  // namespace adaptertune
