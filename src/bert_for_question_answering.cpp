#include "adaptertune/bert_for_question_answering.h"

#include <utility>

#include <ATen/ATen.h>

#include "adaptertune/error.h"
#include "shape_check.h"

namespace adaptertune {

BertForQuestionAnsweringImpl::BertForQuestionAnsweringImpl(const BertConfig& config)
    : BertForQuestionAnsweringImpl(BertModel(config)) {}

BertForQuestionAnsweringImpl::BertForQuestionAnsweringImpl(BertModel shared) {
  if (!shared) throw Error("BertForQuestionAnswering: no BertModel to share");
  bert = register_module("bert", std::move(shared));
  const BertConfig& config = bert->config();
  qa_outputs = register_module("qa_outputs", torch::nn::Linear(config.hidden_size, 2));
  init_bert_weights(*qa_outputs, config.initializer_range);
}

torch::Tensor BertForQuestionAnsweringImpl::forward(const torch::Tensor& input_ids,
                                                    const torch::Tensor& attention_mask,
                                                    const torch::Tensor& token_type_ids) {
  return qa_outputs(bert(input_ids, attention_mask, token_type_ids).last_hidden_state);
}

torch::Tensor BertForQuestionAnsweringImpl::forward_from(const torch::Tensor& hidden,
                                                         const torch::Tensor& attention_mask,
                                                         int64_t first_layer) {
  return qa_outputs(bert->forward_from(hidden, attention_mask, first_layer).last_hidden_state);
}

torch::Tensor BertForQuestionAnsweringImpl::loss(const torch::Tensor& logits,
                                                 const torch::Tensor& start_positions,
                                                 const torch::Tensor& end_positions) const {
  if (logits.dim() != 3 || logits.size(2) != 2) {
    throw Error("BertForQuestionAnswering::loss: logits must be [batch, seq, 2], got " +
                detail::shape_string(logits));
  }
  for (const torch::Tensor* positions : {&start_positions, &end_positions}) {
    if (positions->dim() != 1 || positions->size(0) != logits.size(0) ||
        positions->scalar_type() != at::kLong) {
      throw Error("BertForQuestionAnswering::loss: positions must be int64 [" +
                  std::to_string(logits.size(0)) + "], got " + detail::shape_string(*positions));
    }
    detail::check_device(*positions, "BertForQuestionAnswering::loss: positions", logits.device(),
                         "as the logits");
  }
  const int64_t ignored = logits.size(1);
  const torch::Tensor start_logits = logits.select(2, 0).to(at::kFloat);
  const torch::Tensor end_logits = logits.select(2, 1).to(at::kFloat);
  auto cross_entropy = [&](const torch::Tensor& scores, const torch::Tensor& positions) {
    return at::cross_entropy_loss(scores, positions.clamp(0, ignored), {}, at::Reduction::Mean,
                                  ignored);
  };
  return (cross_entropy(start_logits, start_positions) + cross_entropy(end_logits, end_positions)) /
         2;
}

}  // namespace adaptertune
