#pragma once
/// @file bert_for_masked_lm.h
/// BERT with its masked-language-model head, for pretraining.

#include <utility>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_model.h"
#include "adaptertune/layers/mlm_head.h"

namespace adaptertune {

/// Hugging Face's `BertForMaskedLM`: `bert` (without pooler) and `cls` (BertOnlyMLMHead, its
/// decoder tied to the word embeddings), with Hugging Face's parameter names.
class BertForMaskedLMImpl : public torch::nn::Module {
 public:
  explicit BertForMaskedLMImpl(const BertConfig& config);

  /// Vocabulary logits at the positions where `labels` is not -100, and those labels:
  /// ([masked, vocab], [masked]). Computing only the masked positions keeps the vocabulary
  /// projection cheap. `labels` is int64 [batch, seq] on the device of `input_ids`; throws Error
  /// otherwise and, on CPU, on a label other than -100 outside the vocabulary.
  std::pair<torch::Tensor, torch::Tensor> masked_logits(const torch::Tensor& input_ids,
                                                        const torch::Tensor& labels,
                                                        const torch::Tensor& attention_mask = {});
  /// Cross-entropy of the masked positions.
  torch::Tensor loss(const torch::Tensor& input_ids, const torch::Tensor& labels,
                     const torch::Tensor& attention_mask = {});

  BertModel bert{nullptr};
  BertOnlyMLMHead cls{nullptr};
};
TORCH_MODULE(BertForMaskedLM);

}  // namespace adaptertune
