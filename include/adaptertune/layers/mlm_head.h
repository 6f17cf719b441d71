#pragma once
/// @file mlm_head.h
/// BERT's masked-language-model prediction head, with Hugging Face's module names.

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_config.h"
#include "adaptertune/layers/activation.h"

namespace adaptertune {

/// `LayerNorm(act(dense(h)))`: Hugging Face's `BertPredictionHeadTransform`.
class BertPredictionHeadTransformImpl : public torch::nn::Module {
 public:
  explicit BertPredictionHeadTransformImpl(const BertConfig& config);
  /// `hidden` [..., hidden] → [..., hidden], float32 after the LayerNorm.
  torch::Tensor forward(const torch::Tensor& hidden);

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};  // NOLINT: Hugging Face's name

 private:
  Activation activation_;
};
TORCH_MODULE(BertPredictionHeadTransform);

/// `transform`, then the decoder: Hugging Face's `BertLMPredictionHead`. The decoder's weight is
/// the word embedding matrix (BERT ties them), passed to forward(); only its `bias` lives here.
class BertLMPredictionHeadImpl : public torch::nn::Module {
 public:
  explicit BertLMPredictionHeadImpl(const BertConfig& config);
  /// Vocabulary logits [..., vocab] for `hidden` [..., hidden] with `decoder_weight` [vocab,
  /// hidden].
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& decoder_weight);

  BertPredictionHeadTransform transform{nullptr};
  torch::Tensor bias;
};
TORCH_MODULE(BertLMPredictionHead);

/// Hugging Face's `BertOnlyMLMHead`: the `cls` module holding `predictions`, so that parameter
/// names read `cls.predictions.transform.dense.weight`, `cls.predictions.bias`, ….
class BertOnlyMLMHeadImpl : public torch::nn::Module {
 public:
  explicit BertOnlyMLMHeadImpl(const BertConfig& config);
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& decoder_weight) {
    return predictions(hidden, decoder_weight);
  }

  BertLMPredictionHead predictions{nullptr};
};
TORCH_MODULE(BertOnlyMLMHead);

}  // namespace adaptertune
