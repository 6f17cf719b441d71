#pragma once
/// @file embeddings.h
/// BERT's input embeddings: word + position + token type, then LayerNorm and dropout.

#include <map>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/bert_config.h"

namespace adaptertune {

/// Parameter names match Hugging Face's `BertEmbeddings`: `word_embeddings.weight`,
/// `position_embeddings.weight`, `token_type_embeddings.weight`, `LayerNorm.{weight,bias}`.
class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertConfig& config);

  /// `input_ids` and `token_type_ids` are [batch, seq] int64; an undefined `token_type_ids`
  /// means all zeros. Positions are 0..seq-1. Returns [batch, seq, hidden]. Each group of
  /// `routing` is normalised with its task's own LayerNorm when it has one.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids = {},
                        const TaskRouting& routing = TaskRouting::base());

  /// Gives task `name` its own LayerNorm (under `tasks.<name>.LayerNorm`), a copy of the base's.
  void add_layer_norm_copy(const std::string& name);
  /// Removes task `name`'s copy; no-op if it has none.
  void remove_task(const std::string& name);

  torch::nn::Embedding word_embeddings{nullptr};
  torch::nn::Embedding position_embeddings{nullptr};
  torch::nn::Embedding token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};  // NOLINT: Hugging Face's name
  torch::nn::Dropout dropout{nullptr};
  torch::nn::ModuleDict tasks{nullptr};

 private:
  std::map<std::string, torch::nn::LayerNorm> layer_norm_of_;
  int64_t max_positions_;
  int64_t type_vocab_size_;
};
TORCH_MODULE(BertEmbeddings);

}  // namespace adaptertune
