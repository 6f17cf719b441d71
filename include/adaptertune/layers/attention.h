#pragma once
/// @file attention.h
/// Multi-head self-attention with a padding mask, and BERT's attention block around it.

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/bert_config.h"
#include "adaptertune/layers/sublayer_output.h"

namespace adaptertune {

/// Options of SelfAttention.
struct SelfAttentionOptions {
  SelfAttentionOptions(int64_t hidden_size, int64_t num_heads)
      : hidden_size_(hidden_size), num_heads_(num_heads) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, num_heads);
  /// Dropout on the attention probabilities.
  TORCH_ARG(double, dropout) = 0.0;
};

/// Scaled dot-product self-attention over `num_heads` heads. Parameter names match Hugging
/// Face's `BertSelfAttention`: `query`, `key`, `value`.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(const SelfAttentionOptions& options);

  /// `hidden` is [batch, seq, hidden]. `additive_mask` is [batch, 1, 1, seq] (0 where a key
  /// may be attended, a large negative number at padding), or undefined for no mask.
  /// Returns the per-head context vectors concatenated: [batch, seq, hidden].
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask = {});

  torch::nn::Linear query{nullptr};
  torch::nn::Linear key{nullptr};
  torch::nn::Linear value{nullptr};

 private:
  SelfAttentionOptions options_;
};
TORCH_MODULE(SelfAttention);

/// BERT's attention block: `self` (SelfAttention) then `output` (projection, dropout, optional
/// adapter, residual and LayerNorm), as Hugging Face's `BertAttention`.
class BertAttentionImpl : public torch::nn::Module {
 public:
  explicit BertAttentionImpl(const BertConfig& config);
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask = {},
                        const TaskRouting& routing = TaskRouting::base());

  SelfAttention self{nullptr};
  SublayerOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

}  // namespace adaptertune
