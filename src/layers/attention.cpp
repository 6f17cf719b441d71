#include "adaptertune/layers/attention.h"

#include <cmath>
#include <initializer_list>
#include <optional>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/version.h>

#include "adaptertune/error.h"
#include "dropout.h"
#include "gradient_checkpoint.h"
#include "heap_pages.h"
#include "linear.h"
#include "module_walk.h"
#include "onednn_products.h"

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

namespace {

// [batch, seq, hidden] -> [batch, heads, seq, head_size]
at::Tensor split_heads(const at::Tensor& x, int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}

// The context vectors [batch, queries, hidden] from the projected queries [batch, queries,
// hidden] and keys and values [batch, seq, hidden] (views of the projections' output), by the
// library's own products.
at::Tensor attention_context(const at::Tensor& query, const at::Tensor& key,
                             const at::Tensor& value, const at::Tensor& additive_mask,
                             int64_t heads, double dropout_p) {
  const at::Tensor q = split_heads(query, heads);
  const at::Tensor k = split_heads(key, heads);
  const at::Tensor v = split_heads(value, heads);
  // On the CPU the two products go to oneDNN where it serves them (batched_matmul()): it reads
  // the heads in place, as the strided views of the projections' output they are, and writes the
  // context with the heads interleaved, so that merging them below is a view, not a copy.
  at::Tensor probabilities;
  if (dropout_p == 0 &&
      onednn_attention_probabilities_applies(q, k.transpose(-1, -2), additive_mask)) {
    // Inference in bfloat16: the scaling, the mask and the softmax's casts inside oneDNN.
    probabilities = onednn_attention_probabilities(q, k.transpose(-1, -2), additive_mask,
                                                   1.0 / std::sqrt(double(q.size(-1))));
  } else {
    at::Tensor scores = batched_matmul(q, k.transpose(-1, -2), BatchedProductOrder::kHeadsFirst) /
                        std::sqrt(double(q.size(-1)));
    if (additive_mask.defined()) scores = scores + additive_mask.to(scores.scalar_type());
    probabilities = at::softmax(scores, -1);
  }
  // The dropped probabilities are recomputed in backward, not kept (hashed_dropout_matmul()).
  const at::Tensor context =
      hashed_dropout_matmul(probabilities, v, dropout_p, true, BatchedProductOrder::kRowsFirst);
  return context.transpose(1, 2).reshape({query.size(0), query.size(1), query.size(2)});
}

// attention_context() from the projections' output [batch, seq, 3 hidden] (query, key and value
// side by side).
at::Tensor attention_context(const at::Tensor& projected, const at::Tensor& additive_mask,
                             int64_t heads, double dropout_p) {
  const std::vector<at::Tensor> qkv = projected.chunk(3, -1);
  return attention_context(qkv[0], qkv[1], qkv[2], additive_mask, heads, dropout_p);
}

// Whether LibTorch's fused attention kernels serve (LibTorch 2): on CUDA, and on the CPU without
// dropout (in training there the library's products run, for hashed_dropout(): SDPA's own draws
// at::dropout's serial mask).
bool fused_attention_kernels(const at::Tensor& query, double dropout_p) {
  return TORCH_VERSION_MAJOR >= 2 && (!query.device().is_cpu() || dropout_p == 0);
}

// The attention's context from projected queries, keys and values ([batch, *, hidden] each):
// LibTorch 2's fused kernels where they serve, else attention_context().
at::Tensor attend(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                  const at::Tensor& additive_mask, int64_t heads, double dropout_p) {
#if TORCH_VERSION_MAJOR >= 2
  if (fused_attention_kernels(query, dropout_p)) {
    // The mask must be absent (not an undefined tensor) for the fused kernels to be eligible,
    // and must match q's dtype (bf16/fp16 under autocast) or SDPA falls back to its unfused path.
    std::optional<at::Tensor> mask;
    if (additive_mask.defined()) mask = additive_mask.to(query.scalar_type());
    return at::scaled_dot_product_attention(split_heads(query, heads), split_heads(key, heads),
                                            split_heads(value, heads), mask, dropout_p, false)
        .transpose(1, 2)
        .reshape({query.size(0), query.size(1), query.size(2)});
  }
#endif
  return attention_context(query, key, value, additive_mask, heads, dropout_p);
}

}  // namespace

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& hidden,
                                         const torch::Tensor& additive_mask) {
  const int64_t heads = options_.num_heads();
  // The three projections as one product over the concatenated weights: the input is read once
  // (and, under autocast, cast once), and its gradient is one product instead of three plus two
  // additions. The parameters stay three, with Hugging Face's names.
  const auto [weight, bias] = projection_weights();
  const at::Tensor projected = linear(hidden, weight, bias);
  const double dropout_p = dropout_now();
  if (fused_attention_kernels(projected, dropout_p) || !recompute_probabilities_) {
    const std::vector<at::Tensor> qkv = projected.chunk(3, -1);
    return attend(qkv[0], qkv[1], qkv[2], additive_mask, heads, dropout_p);
  }
  // Backward keeps the projections' output only and computes the probabilities again from it:
  // the same operations, the same dropout masks (detail::checkpointed()), so the same gradients.
  return detail::checkpointed(projected, [additive_mask, heads, dropout_p](const at::Tensor& x) {
    return attention_context(x, additive_mask, heads, dropout_p);
  });
}

torch::Tensor SelfAttentionImpl::forward_first_position(const torch::Tensor& hidden,
                                                        const torch::Tensor& additive_mask) {
  const int64_t d = options_.hidden_size();
  // Rows of the joined weights (packed: views of one block): the query's for the first position,
  // the key's and the value's for every position.
  const auto [weight, bias] = projection_weights();
  const at::Tensor query =
      linear(hidden.narrow(1, 0, 1), weight.narrow(0, 0, d), bias.narrow(0, 0, d));
  const at::Tensor key_value = linear(hidden, weight.narrow(0, d, 2 * d), bias.narrow(0, d, 2 * d));
  const double dropout_p = dropout_now();
  return attend(query, key_value.narrow(-1, 0, d), key_value.narrow(-1, d, d), additive_mask,
                options_.num_heads(), dropout_p);
}

namespace {

// Whether `parts` are, in order, the consecutive rows of `block`: views of it, as
// pack_projections() left them, with its dtype.
bool still_views_of(const at::Tensor& block, std::initializer_list<const at::Tensor*> parts) {
  if (!block.defined()) return false;
  const auto* start = static_cast<const char*>(block.data_ptr());
  int64_t offset = 0;
  for (const at::Tensor* part : parts) {
    if (part->scalar_type() != block.scalar_type() || !part->is_contiguous() ||
        static_cast<const char*>(part->data_ptr()) != start + offset) {
      return false;
    }
    offset += part->numel() * static_cast<int64_t>(part->element_size());
  }
  return offset == block.numel() * static_cast<int64_t>(block.element_size());
}

// Whether `parts` share one dtype and device, so that joining them changes neither.
bool alike(std::initializer_list<at::Tensor*> parts) {
  const at::Tensor& first = **parts.begin();
  for (const at::Tensor* part : parts) {
    if (!part->defined() || part->scalar_type() != first.scalar_type() ||
        part->device() != first.device()) {
      return false;
    }
  }
  return true;
}

// Whether any weight or bias of `attention`'s query, key or value requires grad.
bool trains_projections(const SelfAttentionImpl& attention) {
  for (const auto* linear : {&attention.query, &attention.key, &attention.value}) {
    if ((*linear)->weight.requires_grad() || (*linear)->bias.requires_grad()) return true;
  }
  return false;
}

}  // namespace

bool SelfAttentionImpl::packed() const {
  return still_views_of(packed_weight_, {&query->weight, &key->weight, &value->weight}) &&
         still_views_of(packed_bias_, {&query->bias, &key->bias, &value->bias});
}

std::pair<torch::Tensor, torch::Tensor> SelfAttentionImpl::projection_weights() {
  // A block that something gave the parts new storage after (Module::to(), a load) would only
  // hold memory: let it go.
  const bool is_packed = packed();
  if (!is_packed && packed_weight_.defined()) {
    packed_weight_.reset();
    packed_bias_.reset();
  }
  // The packed block carries no gradient to the parameters, so it serves only where none is
  // wanted: gradients off, or none of the six trains (a frozen base).
  bool gradient_wanted = false;
  if (at::GradMode::is_enabled()) gradient_wanted = trains_projections(*this);
  if (!gradient_wanted && is_packed) return {packed_weight_, packed_bias_};
  return {at::cat({query->weight, key->weight, value->weight}),
          at::cat({query->bias, key->bias, value->bias})};
}

void SelfAttentionImpl::pack_projections() {
  if (packed()) return;
  const std::initializer_list<at::Tensor*> weights = {&query->weight, &key->weight, &value->weight};
  const std::initializer_list<at::Tensor*> biases = {&query->bias, &key->bias, &value->bias};
  if (!alike(weights) || !alike(biases)) return;
  torch::NoGradGuard no_grad;
  auto pack = [](std::initializer_list<at::Tensor*> parts) {
    std::vector<at::Tensor> values;
    for (at::Tensor* part : parts) values.push_back(*part);
    at::Tensor block = at::cat(values);
    int64_t row = 0;
    for (at::Tensor* part : parts) {
      // set_data keeps the parameter the module registered (its name, requires_grad).
      part->set_data(block.narrow(0, row, part->size(0)));
      row += part->size(0);
    }
    return block;
  };
  packed_weight_ = pack(weights);
  packed_bias_ = pack(biases);
}

void SelfAttentionImpl::unpack_projections() {
  if (packed()) {
    torch::NoGradGuard no_grad;
    for (at::Tensor* part :
         {&query->weight, &key->weight, &value->weight, &query->bias, &key->bias, &value->bias}) {
      part->set_data(part->clone());
    }
  }
  packed_weight_.reset();
  packed_bias_.reset();
}

namespace {

// pack_frozen_projections(), returning the modules it packed.
std::vector<SelfAttentionImpl*> pack_frozen(torch::nn::Module& module) {
  std::vector<SelfAttentionImpl*> packed;
  auto pack = [&](torch::nn::Module& candidate) {
    auto* attention = candidate.as<SelfAttention>();
    if (attention == nullptr || attention->packed() || trains_projections(*attention)) return;
    attention->pack_projections();
    if (!attention->packed()) return;
    packed.push_back(attention);
    // The three weights a layer's block replaces are freed in the middle of the heap, where the
    // next layer's block does not fit: without this a float32 bert-base kept 85 MB of them
    // resident (peak 599 -> 672 MiB, docs/benchmarks.md), and a hand-back after the last layer
    // would come after that peak.
    release_free_heap_pages();
  };
  for_each_module(module, pack);
  return packed;
}

}  // namespace

int64_t pack_frozen_projections(torch::nn::Module& module) {
  return static_cast<int64_t>(pack_frozen(module).size());
}

FrozenProjectionsPacked::FrozenProjectionsPacked(torch::nn::Module& module)
    : packed_(pack_frozen(module)) {}

FrozenProjectionsPacked::~FrozenProjectionsPacked() {
  try {
    for (SelfAttentionImpl* attention : packed_) attention->unpack_projections();
    if (!packed_.empty()) release_free_heap_pages();
  } catch (...) {
    // Out of memory for the copies: the parameters stay views of their blocks, which serve as
    // well. A destructor must not throw.
  }
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

torch::Tensor BertAttentionImpl::forward_first_position(const torch::Tensor& hidden,
                                                        const torch::Tensor& additive_mask,
                                                        const TaskRouting& routing) {
  // The residual is the first position's input; dense, so that it can be added inside a product.
  return output(self->forward_first_position(hidden, additive_mask),
                hidden.narrow(1, 0, 1).contiguous(), routing);
}

}  // namespace adaptertune
