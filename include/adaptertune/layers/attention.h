#pragma once
/// @file attention.h
/// Multi-head self-attention with a padding mask, and BERT's attention block around it.

#include <utility>

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

  /// Moves the weights (and the biases) of `query`, `key` and `value` into one block each, as
  /// views of it, so that a forward pass without gradients for them projects with that block
  /// instead of joining the three anew every time (a copy of 3 x hidden² values, as long as the
  /// product itself for a short request). Values, dtypes, devices and the parameters stay as
  /// they were; for models that are set up once and then only predict. Anything that later
  /// gives one of them new storage (Module::to(), set_data()) undoes it, and forward() joins
  /// them again. Does nothing when they are still packed.
  void pack_projections();

  torch::nn::Linear query{nullptr};
  torch::nn::Linear key{nullptr};
  torch::nn::Linear value{nullptr};

 private:
  // Whether query, key and value are still the views pack_projections() made.
  bool packed() const;
  // The joined weight [3 hidden, hidden] and bias [3 hidden] the projection uses.
  std::pair<torch::Tensor, torch::Tensor> projection_weights() const;

  SelfAttentionOptions options_;
  // Set by pack_projections(): the blocks query, key and value are views of.
  torch::Tensor packed_weight_;
  torch::Tensor packed_bias_;
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
