#pragma once
/// @file feed_forward.h
/// The first half of BERT's feed-forward sublayer: up-projection and activation.

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_config.h"
#include "adaptertune/layers/activation.h"

namespace adaptertune {

/// `act(dense(h))`, d → intermediate_size; Hugging Face's `BertIntermediate`. The second half
/// (down-projection, dropout, adapter, residual, LayerNorm) is a SublayerOutput.
class BertIntermediateImpl : public torch::nn::Module {
 public:
  explicit BertIntermediateImpl(const BertConfig& config);
  torch::Tensor forward(const torch::Tensor& hidden);

  torch::nn::Linear dense{nullptr};

 private:
  Activation activation_;
};
TORCH_MODULE(BertIntermediate);

}  // namespace adaptertune
