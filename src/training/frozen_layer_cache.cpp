#include "training/frozen_layer_cache.h"

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "adaptertune/bert_model.h"
#include "adaptertune/error.h"
#include "adaptertune/tasks/batcher.h"

namespace adaptertune::detail {

int64_t adapter_free_layers(const BertModelImpl& bert, const std::optional<std::string>& task) {
  if (!task) throw Error("cache_frozen_layers needs an adapter (a task) to train");
  const AdapterConfig& adapter = bert.adapter_config(*task);
  int64_t layers = 0;
  while (layers < bert.config().num_hidden_layers && !adapter.in_layer(layers)) ++layers;
  if (layers == 0) {
    throw Error("cache_frozen_layers: adapter \"" + *task +
                "\" leaves out no lowest layer (leave_out 0..k-1, --leave-out 0-N)");
  }
  return layers;
}

FrozenLayerCachePlan plan_frozen_layer_caches(int64_t layers, int64_t training_tokens,
                                              int64_t dev_tokens, int64_t hidden_size,
                                              int64_t max_bytes) {
  const int64_t training_bytes = training_tokens * hidden_size * 4;
  const int64_t all_bytes = (training_tokens + dev_tokens) * hidden_size * 4;
  FrozenLayerCachePlan plan;
  if (training_bytes > max_bytes) {
    plan.message = "the frozen-layer cache would take " + std::to_string(training_bytes >> 20) +
                   " MiB, more than cache_max_bytes; training without it";
    return plan;
  }
  plan.training = layers;
  if (all_bytes > max_bytes) {
    plan.message = "the frozen-layer cache would take " + std::to_string(all_bytes >> 20) +
                   " MiB with the dev set's, more than cache_max_bytes; evaluating without it";
    return plan;
  }
  plan.dev = layers;
  return plan;
}

FrozenLayerCache::FrozenLayerCache(int64_t layers, size_t examples, int64_t padded_length,
                                   int64_t pad_id)
    : layers_(layers), padded_length_(padded_length), pad_id_(pad_id) {
  if (layers_ > 0) rows_.resize(examples);
}

at::Tensor FrozenLayerCache::lower_states(BertModelImpl& bert, const Batch& batch) {
  const int64_t seq = batch.input_ids.size(1);
  std::vector<int64_t> missing;  // positions in the batch of the rows the cache lacks
  for (size_t i = 0; i < batch.rows.size(); ++i) {
    if (!rows_.at(batch.rows[i]).defined()) missing.push_back(static_cast<int64_t>(i));
  }
  if (missing.empty()) {
    ++batches_from_cache_;
  } else {
    // The cached layers run without dropout, so that their outputs repeat.
    bert.embeddings->eval();
    for (int64_t i = 0; i < layers_; ++i) bert.encoder->at(static_cast<size_t>(i))->eval();
    torch::NoGradGuard no_grad;
    const at::Tensor index =
        at::tensor(missing, at::kLong).to(batch.input_ids.device(), /*non_blocking=*/false);
    at::Tensor ids = batch.input_ids.index_select(0, index);
    at::Tensor types = batch.token_type_ids.index_select(0, index);
    at::Tensor mask = batch.attention_mask.defined() ? batch.attention_mask.index_select(0, index)
                                                     : at::ones_like(ids);
    // Each row's own tokens (a prefix of its row), where rows are kept without their padding:
    // rows kept at the padded length need none (and, on a GPU, no wait for them).
    std::vector<int64_t> lengths;
    if (padded_length_ == 0) {
      const at::Tensor sums = mask.sum(1).to(at::kCPU, at::kLong).contiguous();
      lengths.assign(sums.data_ptr<int64_t>(), sums.data_ptr<int64_t>() + sums.numel());
    }
    const int64_t computed = std::max(seq, padded_length_);
    if (computed > seq) {
      ids = at::constant_pad_nd(ids, {0, computed - seq}, static_cast<double>(pad_id_));
      types = at::constant_pad_nd(types, {0, computed - seq}, 0);
      mask = at::constant_pad_nd(mask, {0, computed - seq}, 0);
    }
    const at::Tensor hidden = bert.lower_hidden_states(ids, mask, types, layers_);
    for (size_t j = 0; j < missing.size(); ++j) {
      const at::Tensor row = hidden[static_cast<int64_t>(j)];
      rows_[batch.rows[static_cast<size_t>(missing[j])]] =
          (lengths.empty() ? row : row.narrow(0, 0, lengths[j])).clone();
    }
    rows_computed_ += static_cast<int64_t>(missing.size());
    // A batch computed whole is its own answer (no copies back out of the cache).
    if (missing.size() == batch.rows.size()) return hidden.narrow(1, 0, seq);
  }
  std::vector<at::Tensor> rows;
  for (size_t row : batch.rows) {
    const at::Tensor& kept = rows_[row];
    rows.push_back(kept.size(0) >= seq ? kept.narrow(0, 0, seq)
                                       : at::constant_pad_nd(kept, {0, 0, 0, seq - kept.size(0)}));
  }
  return at::stack(rows);
}

}  // namespace adaptertune::detail
