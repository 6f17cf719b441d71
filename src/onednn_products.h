#pragma once
// Matrix products on the CPU through oneDNN: the Linear layers and the attention's batched products
// (float32 and bfloat16).

#include <vector>

#include <ATen/ATen.h>

#include "adaptertune/activation_name.h"

namespace adaptertune {

/// Whether this build calls oneDNN itself (CMake's ADAPTERTUNE_WITH_ONEDNN: on where oneDNN's
/// headers are installed and LibTorch links the same shared oneDNN library).
bool onednn_built();

/// Whether onednn_linear() serves `x W^T + b` for these tensors: a build with oneDNN, strided
/// CPU tensors, a contiguous [out, in] weight whose `in` matches `x`'s last dimension, a
/// contiguous bias or none, no empty dimension, and either float32 operands with no CPU autocast
/// active, or a product that runs in bfloat16 (under CPU autocast with bfloat16, or all operands
/// bfloat16) on a CPU with oneDNN kernels for bfloat16, with or without gradients.
bool onednn_linear_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

/// `activation(x W^T + b)` with oneDNN's matrix products. Float32: forward and backward (an
/// autograd function: the input gradient is `dY W`, the weight gradient `dY^T X`, each computed
/// only when wanted, and `x` is kept for the backward pass only when the weight needs a gradient),
/// the same result as at::linear up to the order of the sums. Bfloat16: the operands cast as
/// autocast casts at::linear's (the casts recorded, so a float32 weight that trains gets a float32
/// gradient), the bias added to the float32 sums before their one rounding, as LibTorch's bfloat16
/// addmm adds it, and the gradients through the same oneDNN kernels as LibTorch's bfloat16 mm: the
/// same bits as at::linear under autocast, forward and backward (tests), without its copy of the
/// bias into the output and its new primitive on every call (LibTorch 1.13).
/// Under c10::InferenceMode the activation runs inside the product, on the float32 sums (a oneDNN
/// post-op: one pass over the result instead of two); in bfloat16 it then sees the sums before
/// their rounding, not after, so a result may differ from the unfused pair's in its last bit.
/// Elsewhere apply_activation() follows the product, so that a pass without gradients outside
/// InferenceMode (gradient checkpointing's first run) gives the bits of one with them.
///
/// Why: Debian's LibTorch runs float32 products through OpenBLAS, whose kernels depend on the CPU
/// it detects or OPENBLAS_CORETYPE names, while oneDNN (which LibTorch already links for bf16)
/// picks its JIT kernel from the instruction set. On the benchmark machine, where OpenBLAS is held
/// to its Haswell kernels, oneDNN multiplies the encoder's shapes 2.0-2.3x faster; where OpenBLAS
/// may pick its AVX-512 kernels, 1.0-1.3x (benchmarks/gemm_backends.py, docs/benchmarks.md).
/// Throws Error where !onednn_linear_applies().
at::Tensor onednn_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                         Activation activation = Activation::kIdentity);

/// Whether onednn_linear_add() serves `scale (x W^T + b) + addends[0] + addends[1] ...`: under
/// c10::InferenceMode, for a product that onednn_linear() runs in bfloat16 (under CPU autocast or
/// with bfloat16 operands), with addends that are contiguous float32 or bfloat16 CPU tensors of
/// the product's result shape (no broadcasting).
bool onednn_linear_add_applies(const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, const std::vector<at::Tensor>& addends);

/// `scale (x W^T + b) + addends[0] + addends[1] ...` in one oneDNN product: the scale and the
/// additions are post-ops on the float32 sums, so the result is written once and rounded once,
/// in float32 where an addend is float32 (LibTorch's promotion of the unfused sum) and bfloat16
/// otherwise. The unfused steps round the product to bfloat16 first (and each bfloat16 sum after
/// it), so results differ from theirs in the last bits: hence InferenceMode only, as for the
/// activation of onednn_linear(). Throws Error where !onednn_linear_add_applies().
///
/// Why: in a bfloat16 pass over SST-2 dev at the main job's shape the residual additions after
/// the products (each a pass over the hidden states, the bfloat16 product's result read and widened
/// to add the float32 residual) were the largest element-wise operator (docs/benchmarks.md).
at::Tensor onednn_linear_add(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             double scale, const std::vector<at::Tensor>& addends);

/// From now until as many uncover_prepacked_weights() calls, a product x W^T of onednn_linear()
/// or onednn_linear_add() whose weight lies in `storage` reads W from a copy in the blocked layout
/// oneDNN's kernels multiply, made at its first such product and made again after the weight's
/// version counter moves (an in-place write through it), instead of oneDNN laying W out anew
/// inside every call. Bfloat16: the same per-shape kernels on the same values, so the same bits.
/// Float32: a per-shape kernel in place of the run-time-sized one, so the same values up to the
/// order of the sums. FrozenLinearWeightsPrepacked (layers/linear.h) is the public face, and
/// chooses which dtypes' weights it covers.
void cover_with_prepacked_weights(const c10::Storage& storage);
/// Undoes one cover_with_prepacked_weights(); the last one lets the storage's copies go.
void uncover_prepacked_weights(const c10::Storage& storage);
/// How many prepacked copies exist now, over every covered storage.
int64_t prepacked_weight_copies();

/// The memory order of a batched product's [batch, heads, rows, cols] result.
enum class BatchedProductOrder {
  kHeadsFirst,  ///< contiguous [batch, heads, rows, cols]
  kRowsFirst,   ///< laid out as [batch, rows, heads, cols]: transpose(1, 2) of it is contiguous,
                ///< so merging the heads back into one hidden dimension copies nothing
};

/// Whether onednn_batched_matmul() serves `a @ b`: a build with oneDNN, 4-D strided CPU tensors
/// of one dtype, float32 or bfloat16 (bfloat16 only where oneDNN has compiled kernels for this
/// CPU, not its slow reference code), shaped [B, H, M, K] and [B, H, K, N] with no empty
/// dimension. Autocast does not apply to it: cast the operands first (batched_matmul() does).
bool onednn_batched_matmul_applies(const at::Tensor& a, const at::Tensor& b);

/// `a @ b` over [batch, heads] with oneDNN, forward and backward (an autograd function). The
/// operands are read in place through their strides where one of their last two dimensions has
/// unit stride (the attention's heads are such views of the projections' output), so nothing is
/// copied to make batches of matrices; each operand is kept for the backward pass only when the
/// other needs a gradient, and each gradient is written in its operand's own memory order. Same
/// result as at::matmul up to the order of the sums (bfloat16: the same oneDNN kernels, so the
/// same bits on the shapes tested).
///
/// Why: LibTorch 1.13 copies strided heads into contiguous batches, and runs float32 batches of
/// small matrices one OpenBLAS call at a time on one thread; at the main job's shape the two
/// attention products took 9.8 ms a layer that way and 0.86 ms through oneDNN (bf16: 0.50 and
/// 0.40 ms). Throws Error where !onednn_batched_matmul_applies().
at::Tensor onednn_batched_matmul(const at::Tensor& a, const at::Tensor& b,
                                 BatchedProductOrder order);

/// Whether onednn_attention_probabilities() serves `softmax(scale q k_t + mask)`: under
/// c10::InferenceMode, bfloat16 operands that onednn_batched_matmul() multiplies and oneDNN reads
/// in place (the heads as views of the projections' output), and a contiguous float32 or bfloat16
/// mask [B, 1, 1, N] or [B, 1, M, N], or none.
bool onednn_attention_probabilities_applies(const at::Tensor& q, const at::Tensor& k_t,
                                            const at::Tensor& mask);

/// The attention's probabilities `softmax(scale q k_t + mask)` over the last dimension, in
/// bfloat16 [B, H, M, N] (the dtype the product with the values takes them in): the scores'
/// product with the scale and the mask as post-ops on its float32 sums, then oneDNN's softmax
/// from float32 to bfloat16. Autocast's steps round the scores to bfloat16 after the product, the
/// scaling and the mask's addition, before a float32 softmax: these are more exact, so results
/// move in their last bits (InferenceMode only, as onednn_linear_add()). Throws Error where
/// !onednn_attention_probabilities_applies().
///
/// Why: at the main job's shape LibTorch's scaling, mask addition, float32 softmax and cast back
/// took 3.5x the time of the scores' product itself (188 against 53 us for 32 examples x 4 heads
/// x 24 tokens, in a throwaway microbenchmark); here the product with its post-ops took 82 us and
/// the softmax 53. In the bfloat16 SST-2 dev pass: docs/benchmarks.md.
at::Tensor onednn_attention_probabilities(const at::Tensor& q, const at::Tensor& k_t,
                                          const at::Tensor& mask, double scale);

/// `a @ b` for 4-D operands as at::matmul computes it (under CPU autocast, in autocast's dtype),
/// through onednn_batched_matmul() where it applies and at::matmul otherwise; `order` is honoured
/// by the oneDNN path only (at::matmul's result is contiguous), so callers must not depend on it.
at::Tensor batched_matmul(const at::Tensor& a, const at::Tensor& b, BatchedProductOrder order);

}  // namespace adaptertune
