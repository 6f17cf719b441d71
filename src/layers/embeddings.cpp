#include "adaptertune/layers/embeddings.h"

#include "adaptertune/error.h"
#include "dropout.h"
#include "shape_check.h"
#include "task_copies.h"

namespace adaptertune {

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& config)
    : max_positions_(config.max_position_embeddings), type_vocab_size_(config.type_vocab_size) {
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(config.vocab_size, config.hidden_size)
                               .padding_idx(config.pad_token_id)));
  position_embeddings =
      register_module("position_embeddings",
                      torch::nn::Embedding(config.max_position_embeddings, config.hidden_size));
  token_type_embeddings = register_module(
      "token_type_embeddings", torch::nn::Embedding(config.type_vocab_size, config.hidden_size));
  LayerNorm = register_module(
      "LayerNorm",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(config.hidden_dropout_prob));
  tasks = register_module("tasks", torch::nn::ModuleDict());
}

void BertEmbeddingsImpl::add_layer_norm_copy(const std::string& name) {
  detail::add_task_copy(tasks, layer_norm_of_, name, "LayerNorm", LayerNorm);
}

void BertEmbeddingsImpl::remove_task(const std::string& name) {
  detail::remove_task_entry(tasks, layer_norm_of_, name);
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids,
                                          const torch::Tensor& token_type_ids,
                                          const TaskRouting& routing) {
  const at::Device device = word_embeddings->weight.device();
  detail::check_token_ids(input_ids, "input_ids", word_embeddings->options.num_embeddings(),
                          device);
  const int64_t seq = input_ids.size(1);
  if (seq > max_positions_) {
    throw Error("BertEmbeddings: sequence length " + std::to_string(seq) +
                " exceeds max_position_embeddings " + std::to_string(max_positions_));
  }
  auto positions = torch::arange(seq, input_ids.options().dtype(torch::kLong));
  torch::Tensor embeddings = word_embeddings(input_ids) + position_embeddings(positions);
  if (token_type_ids.defined()) {
    detail::check_same_shape_and_device(token_type_ids, input_ids, "token_type_ids", "input_ids");
    detail::check_token_ids(token_type_ids, "token_type_ids", type_vocab_size_, device);
    embeddings = embeddings + token_type_embeddings(token_type_ids);
  } else {
    // Type 0 for every token: add row 0 instead of gathering a tensor of zeros.
    embeddings = embeddings + token_type_embeddings->weight[0];
  }
  bool owned = false;
  for (const auto& group : routing.groups()) {
    owned = owned || (group.task && layer_norm_of_.count(*group.task) > 0);
  }
  if (routing.not_yet_replicated(embeddings) && !owned) {
    // No branch has its own LayerNorm: computed once for all of them.
    return hashed_dropout(dropout, LayerNorm(embeddings));
  }
  return hashed_dropout(
      dropout, routing.map(embeddings, [this](const std::optional<std::string>& task,
                                              const torch::Tensor& rows) {
        torch::nn::LayerNorm norm = detail::own_or_base(layer_norm_of_, task, LayerNorm);
        return norm(rows);
      }));
}

}  // namespace adaptertune
