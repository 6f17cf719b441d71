#include "adaptertune/bert_for_masked_lm.h"

#include <ATen/ATen.h>

#include "adaptertune/error.h"
#include "shape_check.h"

namespace adaptertune {

BertForMaskedLMImpl::BertForMaskedLMImpl(const BertConfig& config) {
  bert = register_module("bert", BertModel(config, /*add_pooling_layer=*/false));
  cls = register_module("cls", BertOnlyMLMHead(config));
}

std::pair<torch::Tensor, torch::Tensor> BertForMaskedLMImpl::masked_logits(
    const torch::Tensor& input_ids, const torch::Tensor& labels,
    const torch::Tensor& attention_mask) {
  if (!labels.defined() || labels.scalar_type() != at::kLong) {
    throw Error("labels: expected int64 [batch, seq], got " + detail::tensor_string(labels));
  }
  torch::Tensor hidden = bert(input_ids, attention_mask).last_hidden_state;
  detail::check_same_shape_and_device(labels, input_ids, "labels", "input_ids");
  torch::Tensor positions = (labels.reshape(-1) != -100).nonzero().squeeze(-1);
  torch::Tensor targets = labels.reshape(-1).index_select(0, positions);
  const torch::Tensor& vocabulary = bert->embeddings->word_embeddings->weight;
  detail::check_value_range(targets, "labels (other than -100)", vocabulary.size(0));
  torch::Tensor selected = hidden.reshape({-1, hidden.size(-1)}).index_select(0, positions);
  return {cls(selected, vocabulary), targets};
}

torch::Tensor BertForMaskedLMImpl::loss(const torch::Tensor& input_ids, const torch::Tensor& labels,
                                        const torch::Tensor& attention_mask) {
  auto [logits, targets] = masked_logits(input_ids, labels, attention_mask);
  return at::cross_entropy_loss(logits.to(at::kFloat), targets);
}

}  // namespace adaptertune
