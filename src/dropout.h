#pragma once
// Dropout for the encoder's layers, with a mask that costs next to nothing on the CPU.

#include <cstdint>
#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/modules/dropout.h>

#include "onednn_products.h"

namespace adaptertune {

/// Inverted dropout: each element is zeroed with probability `p`, the rest scaled by 1/(1-p); the
/// input itself when `!training` or `p == 0`. The result's distribution is at::dropout's. Throws
/// Error when `p` is not in [0, 1], on every device and in either mode.
///
/// On the CPU, LibTorch without MKL draws at::dropout's mask with a serial, per-element
/// bernoulli_ into a float tensor that autograd then keeps for the backward pass: on the main
/// job's shape that took 3-5 ms per call for a 0.03 ms multiply, the largest cost of an adapter
/// step after the matrix products. Here each element's keep bit is a hash (SplitMix64) of its
/// index and a seed drawn once per call from LibTorch's default CPU generator, so the mask is
/// computed in parallel, fused into the multiply, never stored, and recomputed in the backward
/// pass from the seed alone. It is reproducible under torch::manual_seed and does not depend on
/// the number of threads. Other devices use at::dropout (a fused kernel on CUDA).
at::Tensor hashed_dropout(const at::Tensor& input, double p, bool training);

/// Where the tensors that hashed_dropout() drops on this thread sit in a larger batch. While one
/// lives, a tensor whose first dimension holds `rows` rows of the batch (outermost in its
/// row-major order, as every activation of the encoder has it) is hashed as rows
/// [`first_row`, `first_row` + `rows`) of the whole batch: its element `i` takes the mask bit of
/// element `first_row * (numel / rows) + i`. So the processes of a group, each dropping its slice
/// of one padded batch with the same seeds, drop what one process drops on the whole batch. On
/// the CPU only (other devices draw at::dropout's mask); the rows in force when a forward pass
/// ran are the ones its backward pass uses. Guards nest: the previous rows come back when one
/// ends. `DropoutRows(0, 0)` stands for no guard (each tensor a whole batch). Throws Error when
/// `first_row` or `rows` is negative, or `rows` is 0 with `first_row` not.
class DropoutRows {
 public:
  DropoutRows(int64_t first_row, int64_t rows);
  ~DropoutRows();
  DropoutRows(const DropoutRows&) = delete;
  DropoutRows& operator=(const DropoutRows&) = delete;

  /// The first row and row count in force on this thread: {0, 0} outside any guard (each tensor
  /// is a whole batch).
  static std::pair<int64_t, int64_t> current();

 private:
  std::pair<int64_t, int64_t> previous_;
};

/// Whether dropout with probability `p` changes anything: in training, with `p` above 0.
/// Otherwise hashed_dropout() returns its input, so callers may skip it or fuse what follows.
inline bool drops(double p, bool training) {
  return training && p > 0;
}

/// drops() for `layer`'s probability and train/eval mode.
inline bool drops(const torch::nn::Dropout& layer) {
  return drops(layer->options.p(), layer->is_training());
}

/// `layer`'s dropout probability and train/eval mode applied with hashed_dropout() above.
inline at::Tensor hashed_dropout(const torch::nn::Dropout& layer, const at::Tensor& input) {
  return hashed_dropout(input, layer->options.p(), layer->is_training());
}

/// `hashed_dropout(probs, p, training)` multiplied by `values` with batched_matmul() (`order` as
/// there), the same result and gradients, without keeping the dropped probabilities for the
/// backward pass: backward recomputes them from `probs` and the mask's seed. The attention's
/// softmax keeps its output `probs` for its own backward anyway, so each layer keeps one tensor
/// of the probabilities' size instead of two (at bert-base, batch 32 x seq 128: 25 MB in float32,
/// 12.6 MB in bfloat16, per layer). Where hashed_dropout() would not hash (`!training`, `p` 0 or
/// 1, other devices or dtypes) it is the two steps. Throws Error when `p` is not in [0, 1].
at::Tensor hashed_dropout_matmul(const at::Tensor& probs, const at::Tensor& values, double p,
                                 bool training, BatchedProductOrder order);

namespace detail {

/// The CPU kernel: `input` (contiguous, floating) with each element `i` kept, and multiplied by
/// 1/(1-p), where the hash of (`seed`, `first_element` + i) falls below (1-p) * 2^32. The same
/// seed gives the same mask, which is how the backward pass applies it to the gradient; a slice
/// of a tensor starting at its element `first_element` gets that slice of the tensor's mask.
/// Exposed for tests.
at::Tensor apply_hashed_dropout_mask(const at::Tensor& input, double p, uint64_t seed,
                                     int64_t first_element = 0);

}  // namespace detail
}  // namespace adaptertune
