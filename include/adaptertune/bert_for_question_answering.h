#pragma once
/// @file bert_for_question_answering.h
/// BERT with a span head for extractive question answering (SQuAD).

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_model.h"

namespace adaptertune {

/// Hugging Face's `BertForQuestionAnswering`: `bert` (BertModel), then `qa_outputs` (Linear
/// hidden → 2) on every token's hidden state, giving each token a start and an end logit.
/// Parameter names carry the `bert.` prefix and the head is `qa_outputs.{weight,bias}`, as in
/// Python checkpoints. The pooler is not used (Hugging Face's model has none: a checkpoint
/// without it loads, and one written here carries it for BertModel's sake).
class BertForQuestionAnsweringImpl : public torch::nn::Module {
 public:
  explicit BertForQuestionAnsweringImpl(const BertConfig& config);
  /// A span head on an existing `bert`, shared, not copied: e.g. one base serving span tasks
  /// beside classification tasks (Predictor), each span task with a model of its own around the
  /// one BertModel. The head is freshly initialised.
  explicit BertForQuestionAnsweringImpl(BertModel bert);

  /// Span logits [batch, seq, 2] of the active task (adapters); `[..., 0]` start, `[..., 1]` end.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& token_type_ids = {});
  /// The active task's span logits from `hidden`, the output of the lowest `first_layer` layers
  /// (BertModelImpl::forward_from(): what a trainer continues from when it caches those layers).
  torch::Tensor forward_from(const torch::Tensor& hidden, const torch::Tensor& attention_mask,
                             int64_t first_layer);

  /// Hugging Face's loss: the mean of the start and end cross-entropies over [batch] int64
  /// positions. A position outside the sequence (e.g. of an answer cut off by the window) is
  /// clamped to `seq` and ignored, as in Python. Throws Error on a shape, dtype or device (the
  /// logits') mismatch.
  torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& start_positions,
                     const torch::Tensor& end_positions) const;

  BertModel bert{nullptr};
  torch::nn::Linear qa_outputs{nullptr};
};
TORCH_MODULE(BertForQuestionAnswering);

}  // namespace adaptertune
