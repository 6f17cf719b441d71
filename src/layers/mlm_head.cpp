#include "adaptertune/layers/mlm_head.h"

#include <ATen/ATen.h>

#include "adaptertune/bert_model.h"
#include "linear.h"

namespace adaptertune {

BertPredictionHeadTransformImpl::BertPredictionHeadTransformImpl(const BertConfig& config)
    : activation_(parse_activation(config.hidden_act, "BertConfig: 'hidden_act'")) {
  dense = register_module("dense", torch::nn::Linear(config.hidden_size, config.hidden_size));
  LayerNorm = register_module(
      "LayerNorm",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps)));
  init_bert_weights(*this, config.initializer_range);
}

torch::Tensor BertPredictionHeadTransformImpl::forward(const torch::Tensor& hidden) {
  // LayerNorm in the LayerNorm's dtype: under CPU autocast the dense output is bf16, and
  // LibTorch's CPU layer_norm wants input and weight of one dtype.
  return LayerNorm(
      linear_activation(dense, hidden, activation_).to(LayerNorm->weight.scalar_type()));
}

BertLMPredictionHeadImpl::BertLMPredictionHeadImpl(const BertConfig& config) {
  transform = register_module("transform", BertPredictionHeadTransform(config));
  bias = register_parameter("bias", torch::zeros({config.vocab_size}));
}

torch::Tensor BertLMPredictionHeadImpl::forward(const torch::Tensor& hidden,
                                                const torch::Tensor& decoder_weight) {
  torch::Tensor h = transform(hidden);
  return linear(h, decoder_weight.to(h.scalar_type()), bias);
}

BertOnlyMLMHeadImpl::BertOnlyMLMHeadImpl(const BertConfig& config) {
  predictions = register_module("predictions", BertLMPredictionHead(config));
}

}  // namespace adaptertune
