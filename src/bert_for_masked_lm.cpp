#include "adaptertune/bert_for_masked_lm.h"

#include <ATen/ATen.h>

#include "shape_check.h"

namespace adaptertune {

BertForMaskedLMImpl::BertForMaskedLMImpl(const BertConfig& config) {
  bert = register_module("bert", BertModel(config, /*add_pooling_layer=*/false));
  cls = register_module("cls", BertOnlyMLMHead(config));
}

std::pair<torch::Tensor, torch::Tensor> BertForMaskedLMImpl::masked_logits(
    const torch::Tensor& input_ids, const torch::Tensor& labels,
    const torch::Tensor& attention_mask) {
  detail::check_same_shape(labels, input_ids, "labels", "input_ids");
  torch::Tensor hidden = bert(input_ids, attention_mask).last_hidden_state;
  torch::Tensor positions = (labels.reshape(-1) != -100).nonzero().squeeze(-1);
  torch::Tensor selected = hidden.reshape({-1, hidden.size(-1)}).index_select(0, positions);
  torch::Tensor logits = cls(selected, bert->embeddings->word_embeddings->weight);
  return {logits, labels.reshape(-1).index_select(0, positions)};
}

torch::Tensor BertForMaskedLMImpl::loss(const torch::Tensor& input_ids, const torch::Tensor& labels,
                                        const torch::Tensor& attention_mask) {
  auto [logits, targets] = masked_logits(input_ids, labels, attention_mask);
  return at::cross_entropy_loss(logits.to(at::kFloat), targets);
}

}  // namespace adaptertune
