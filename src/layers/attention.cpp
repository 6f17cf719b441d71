#include "adaptertune/layers/attention.h"

#include <cmath>
#include <optional>

#include <ATen/ATen.h>
#include <torch/version.h>

#include "adaptertune/error.h"
#include "dropout.h"

namespace adaptertune {

SelfAttentionImpl::SelfAttentionImpl(const SelfAttentionOptions& options) : options_(options) {
  if (options.hidden_size() % options.num_heads() != 0) {
    throw Error("SelfAttention: hidden_size " + std::to_string(options.hidden_size()) +
                " is not a multiple of num_heads " + std::to_string(options.num_heads()));
  }
  const int64_t d = options.hidden_size();
  query = register_module("query", torch::nn::Linear(d, d));
  key = register_module("key", torch::nn::Linear(d, d));
  value = register_module("value", torch::nn::Linear(d, d));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& hidden,
                                         const torch::Tensor& additive_mask) {
  const int64_t batch = hidden.size(0);
  const int64_t seq = hidden.size(1);
  const int64_t heads = options_.num_heads();
  const int64_t head_size = options_.hidden_size() / heads;
  // [batch, seq, hidden] -> [batch, heads, seq, head_size]
  auto split_heads = [&](const torch::Tensor& x) {
    return x.view({batch, seq, heads, head_size}).transpose(1, 2);
  };
  // The three projections as one product over the concatenated weights: the input is read once
  // (and, under autocast, cast once), and its gradient is one product instead of three plus two
  // additions. The parameters stay three, with Hugging Face's names.
  const int64_t d = options_.hidden_size();
  const std::vector<at::Tensor> qkv =
      at::linear(hidden, at::cat({query->weight, key->weight, value->weight}),
                 at::cat({query->bias, key->bias, value->bias}))
          .split(d, -1);
  torch::Tensor q = split_heads(qkv[0]);
  torch::Tensor k = split_heads(qkv[1]);
  torch::Tensor v = split_heads(qkv[2]);
  const double dropout_p = is_training() ? options_.dropout() : 0.0;
#if TORCH_VERSION_MAJOR >= 2
  // Fused kernels (flash / memory-efficient attention on CUDA) where LibTorch has them; on the
  // CPU in training, the products below, for hashed_dropout() (SDPA's own draws at::dropout's
  // serial mask there).
  if (!q.device().is_cpu() || dropout_p == 0) {
    // The mask must be absent (not an undefined tensor) for the fused kernels to be eligible,
    // and must match q's dtype (bf16/fp16 under autocast) or SDPA falls back to its unfused path.
    std::optional<at::Tensor> mask;
    if (additive_mask.defined()) mask = additive_mask.to(q.scalar_type());
    return at::scaled_dot_product_attention(q, k, v, mask, dropout_p, false)
        .transpose(1, 2)
        .reshape({batch, seq, options_.hidden_size()});
  }
#endif
  torch::Tensor scores = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(double(head_size));
  if (additive_mask.defined()) scores = scores + additive_mask.to(scores.scalar_type());
  torch::Tensor probs = hashed_dropout(at::softmax(scores, -1), dropout_p, true);
  torch::Tensor context = at::matmul(probs, v);
  return context.transpose(1, 2).reshape({batch, seq, options_.hidden_size()});
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& config) {
  self = register_module(
      "self", SelfAttention(SelfAttentionOptions(config.hidden_size, config.num_attention_heads)
                                .dropout(config.attention_probs_dropout_prob)));
  output = register_module(
      "output", SublayerOutput(SublayerOutputOptions(config.hidden_size, config.hidden_size)
                                   .dropout(config.hidden_dropout_prob)
                                   .layer_norm_eps(config.layer_norm_eps)));
}

torch::Tensor BertAttentionImpl::forward(const torch::Tensor& hidden,
                                         const torch::Tensor& additive_mask,
                                         const TaskRouting& routing) {
  return output(self(hidden, additive_mask), hidden, routing);
}

}  // namespace adaptertune
