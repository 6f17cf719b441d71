#pragma once
/// @file attention.h
/// Multi-head self-attention with a padding mask, and BERT's attention block around it.

#include <cstdint>
#include <utility>
#include <vector>

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
  /// forward()'s output at the first position only, [batch, 1, hidden]: the query of that
  /// position against the keys and values of every position, all a pooler reads of the last
  /// layer. The query is projected for that position alone; the probabilities are not recomputed
  /// in backward (recompute_probabilities() applies to forward() only).
  torch::Tensor forward_first_position(const torch::Tensor& hidden,
                                       const torch::Tensor& additive_mask = {});

  /// Moves the weights (and the biases) of `query`, `key` and `value` into one block each, as
  /// views of it, so that a forward pass that wants no gradient for them (gradients off, or a
  /// frozen base in training) projects with that block instead of joining the three anew every
  /// time: a copy of 3 x hidden² values, as long as the product itself for a short request, and
  /// in training one that backward keeps. Values, dtypes, devices and the parameters stay as
  /// they were. Anything that later gives one of them new storage (Module::to(), set_data())
  /// undoes it, and forward() joins them again. Does nothing when they are still packed, or when
  /// the three weights (or biases) differ in dtype or device.
  void pack_projections();
  /// Gives `query`, `key` and `value` their own storage again (the same values) and lets the
  /// block go: undoes pack_projections(). Does nothing when they are not packed.
  void unpack_projections();
  /// Whether query, key and value are still the views pack_projections() made.
  bool packed() const;

  /// Whether a training step keeps the attention probabilities ([batch, heads, seq, seq] per
  /// layer) for backward, or only the projections' output, from which backward computes them
  /// again with the same dropout masks: the same gradients for less memory (at bert-base's
  /// shape in float32, 25 MB a layer) and the scores, softmax and products once more
  /// (BertEncoderImpl::set_recompute_attention_probabilities() says what that costs). Off by
  /// default; applies where the library's own products run (the CPU with dropout; LibTorch 1.x
  /// everywhere), since LibTorch 2's fused kernels recompute by themselves.
  void set_recompute_probabilities(bool recompute) { recompute_probabilities_ = recompute; }
  bool recompute_probabilities() const { return recompute_probabilities_; }

  torch::nn::Linear query{nullptr};
  torch::nn::Linear key{nullptr};
  torch::nn::Linear value{nullptr};

 private:
  // The joined weight [3 hidden, hidden] and bias [3 hidden] the projection uses.
  std::pair<torch::Tensor, torch::Tensor> projection_weights();
  // The probabilities' dropout now: the option's in training, 0 in evaluation.
  double dropout_now() const { return is_training() ? options_.dropout() : 0.0; }

  SelfAttentionOptions options_;
  // Set by pack_projections(): the blocks query, key and value are views of.
  torch::Tensor packed_weight_;
  torch::Tensor packed_bias_;
  bool recompute_probabilities_ = false;
};
TORCH_MODULE(SelfAttention);

/// Packs the projections (SelfAttentionImpl::pack_projections()) of every SelfAttention in
/// `module` that trains none of them (no weight or bias of `query`, `key` or `value` requires
/// grad), handing each layer's freed weights back to the system as it goes. Returns how many
/// SelfAttention modules were packed by this call.
int64_t pack_frozen_projections(torch::nn::Module& module);

/// For training adapters or a head: while it lives, the projections of every SelfAttention in
/// `module` that trains none of them are packed (pack_frozen_projections()), so that a step
/// neither joins the frozen query, key and value weights anew nor keeps the joined copy for
/// backward. When it goes, those it packed get their own storage back, as they were. A
/// TrainingEngine holds one; `module` must outlive it, and its requires_grad flags are set first.
class FrozenProjectionsPacked {
 public:
  explicit FrozenProjectionsPacked(torch::nn::Module& module);
  ~FrozenProjectionsPacked();
  FrozenProjectionsPacked(const FrozenProjectionsPacked&) = delete;
  FrozenProjectionsPacked& operator=(const FrozenProjectionsPacked&) = delete;

  /// How many SelfAttention modules it packed.
  int64_t packed() const { return static_cast<int64_t>(packed_.size()); }

 private:
  std::vector<SelfAttentionImpl*> packed_;
};

/// BERT's attention block: `self` (SelfAttention) then `output` (projection, dropout, optional
/// adapter, residual and LayerNorm), as Hugging Face's `BertAttention`.
class BertAttentionImpl : public torch::nn::Module {
 public:
  explicit BertAttentionImpl(const BertConfig& config);
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& additive_mask = {},
                        const TaskRouting& routing = TaskRouting::base());
  /// forward()'s output at the first position only, [batch, 1, hidden]
  /// (SelfAttentionImpl::forward_first_position()).
  torch::Tensor forward_first_position(const torch::Tensor& hidden,
                                       const torch::Tensor& additive_mask = {},
                                       const TaskRouting& routing = TaskRouting::base());

  SelfAttention self{nullptr};
  SublayerOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

}  // namespace adaptertune
