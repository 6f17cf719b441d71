#pragma once
/// @file pooler.h
/// BERT's pooler: tanh(dense(h[CLS])).

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_config.h"

namespace adaptertune {

/// Takes the hidden state of the first token ([CLS]) and applies `tanh(dense(·))`.
class BertPoolerImpl : public torch::nn::Module {
 public:
  explicit BertPoolerImpl(const BertConfig& config);
  /// `hidden` [batch, seq, hidden] → [batch, hidden].
  torch::Tensor forward(const torch::Tensor& hidden);

  torch::nn::Linear dense{nullptr};
};
TORCH_MODULE(BertPooler);

}  // namespace adaptertune
