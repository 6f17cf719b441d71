#pragma once
/// @file batcher.h
/// From encoded examples to padded tensor batches.

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "adaptertune/tasks/text_dataset.h"
#include "adaptertune/text/tokenizer.h"

namespace adaptertune {

/// Encoded examples with their targets.
struct EncodedDataset {
  std::vector<Encoding> encodings;
  /// Class ids or scores (as double); empty for unlabelled data.
  std::vector<double> targets;
  /// The examples' indices (TextExample::index: row ids for submission files).
  std::vector<int64_t> indices;
  bool regression = false;
  /// Examples that lost tokens to truncation.
  int64_t truncated = 0;
};

/// Tokenizes every example of `data` (text pairs where the task has them), truncating to
/// `max_length`.
EncodedDataset encode_examples(const TextDataset& data, const Tokenizer& tokenizer,
                               int64_t max_length);

/// A padded batch (CPU tensors; move them with to()).
struct Batch {
  at::Tensor input_ids;       ///< [batch, longest] int64, padded with the pad id
  at::Tensor attention_mask;  ///< [batch, longest] int64; undefined when nothing is padded
  at::Tensor token_type_ids;  ///< [batch, longest] int64
  at::Tensor labels;          ///< [batch] int64 class ids or float scores; undefined if unlabelled
  std::vector<size_t> rows;   ///< the dataset rows in this batch
  int64_t tokens = 0;         ///< real (unpadded) tokens
  Batch to(const c10::Device& device) const;
  /// Rows [begin, end) of this batch, padded as the whole batch is: a process's share of a global
  /// batch that scores as its rows do in the whole (a span head's loss reads every position,
  /// padding included, as Hugging Face's does). Throws Error when the range is not in the batch.
  Batch slice(int64_t begin, int64_t end) const;
};

struct BatcherOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  /// Put examples of similar length together (less padding): shuffled chunks of 50 batches are
  /// sorted by length, cut into batches, and the batches shuffled.
  bool group_by_length = false;
  uint64_t seed = 42;
  int64_t pad_id = 0;

  /// Batching for evaluation and prediction: a fixed order, examples of similar length together
  /// (far less padding: SST-2 dev runs at 1.7x the examples/s of batches in file order); the
  /// caller puts each row's result back in its place.
  static BatcherOptions for_inference(int64_t batch_size, int64_t pad_id);
};

/// Deterministic batching: the order of epoch e depends only on (seed, e), so that a resumed run
/// sees the same batches.
class Batcher {
 public:
  Batcher(const EncodedDataset& data, BatcherOptions options);
  int64_t batches_per_epoch() const;
  /// The rows of every batch of epoch `epoch`, in order.
  std::vector<std::vector<size_t>> epoch_order(int64_t epoch) const;
  /// Pads `rows` to their longest sequence. The attention mask is left undefined when no row
  /// needs padding, so that fused attention kernels stay eligible.
  Batch make_batch(const std::vector<size_t>& rows) const;

 private:
  const EncodedDataset& data_;
  BatcherOptions options_;
};

}  // namespace adaptertune
