#pragma once
// AdapterDrop's cache of the frozen lowest layers' outputs, per training example: the one home
// of the rule for the Trainer (a cache per task) and the QuestionAnsweringTrainer.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace adaptertune {
class BertModelImpl;
struct Batch;
}  // namespace adaptertune

namespace adaptertune::detail {

/// The lowest layers that hold nothing of adapter `task` (leave_out 0..k-1): what the cache may
/// skip. Throws Error without a task or when it leaves out no lowest layer.
int64_t adapter_free_layers(const BertModelImpl& bert, const std::optional<std::string>& task);

/// How many layers the training cache and the dev evaluations' cache hold (0: none).
struct FrozenLayerCachePlan {
  int64_t training = 0;
  int64_t dev = 0;
  /// What did not fit, for the run's log; empty when both did.
  std::string message;
};

/// `layers` for the training cache when the hidden states of `training_tokens` tokens of
/// `hidden_size` float32 values fit in `max_bytes` (else no cache at all), and for the dev cache
/// too when `dev_tokens` more fit beside them (else the dev set is evaluated without one: the
/// training cache, which saves the most, is not given up for it).
FrozenLayerCachePlan plan_frozen_layer_caches(int64_t layers, int64_t training_tokens,
                                              int64_t dev_tokens, int64_t hidden_size,
                                              int64_t max_bytes);

/// The hidden states after the lowest `layers` layers, per training example (its row).
class FrozenLayerCache {
 public:
  FrozenLayerCache() = default;
  /// For `examples` training examples; `layers` 0: no cache. `padded_length` 0: each row is kept
  /// without its padding (enough where nothing reads padded positions: a sequence head reads the
  /// first). Else each row is kept at that length (the longest a batch can have), computed with
  /// padding of `pad_id`, so that a batch from the cache has the padded positions' states a batch
  /// computed whole has (a span head's loss reads every position, padding included).
  FrozenLayerCache(int64_t layers, size_t examples, int64_t padded_length = 0, int64_t pad_id = 0);

  int64_t layers() const { return layers_; }
  /// Batches served wholly from the cache so far.
  int64_t batches_from_cache() const { return batches_from_cache_; }
  /// Rows computed so far (each once).
  int64_t rows_computed() const { return rows_computed_; }

  /// The hidden states after the cached layers for `batch` ([batch, seq, hidden], padded to the
  /// batch's length), each row from the cache, or computed by `bert` where the cache lacks it and
  /// kept. Rows are computed without dropout (those layers are put in eval mode: an evaluation in
  /// between puts the whole model back in training mode), only those the cache lacks, so that a
  /// process of a group, whose slices of the global batches hold other rows every epoch, fills
  /// its cache over the epochs instead of missing it on most batches.
  at::Tensor lower_states(BertModelImpl& bert, const Batch& batch);

 private:
  int64_t layers_ = 0;
  int64_t padded_length_ = 0;
  int64_t pad_id_ = 0;
  std::vector<at::Tensor> rows_;
  int64_t batches_from_cache_ = 0;
  int64_t rows_computed_ = 0;
};

}  // namespace adaptertune::detail
