#pragma once
// float32 Linear layers on the CPU through oneDNN's matrix products.

#include <ATen/ATen.h>

namespace adaptertune {

/// Whether this build calls oneDNN itself (CMake's ADAPTERTUNE_WITH_ONEDNN: on where oneDNN's
/// headers are installed and LibTorch links the same shared oneDNN library).
bool onednn_linear_built();

/// Whether onednn_linear() serves `x W^T + b` for these tensors: a build with oneDNN, strided
/// float32 tensors on the CPU, a contiguous [out, in] weight whose `in` matches `x`'s last
/// dimension, a contiguous float32 bias or none, no empty dimension, and no CPU autocast active
/// (under autocast the product runs in its dtype, through at::linear).
bool onednn_linear_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

/// `x W^T + b` with oneDNN's float32 matrix products, forward and backward (an autograd function:
/// the input gradient is `dY W`, the weight gradient `dY^T X`, each computed only when wanted, and
/// `x` is kept for the backward pass only when the weight needs a gradient). Same result as
/// at::linear up to the order of the sums.
///
/// Why: Debian's LibTorch runs float32 products through OpenBLAS, whose kernels depend on the CPU
/// it detects or OPENBLAS_CORETYPE names, while oneDNN (which LibTorch already links for bf16)
/// picks its JIT kernel from the instruction set. On the benchmark machine, where OpenBLAS is held
/// to its Haswell kernels, oneDNN multiplies the encoder's shapes 2.0-2.3x faster; where OpenBLAS
/// may pick its AVX-512 kernels, 1.0-1.3x (benchmarks/gemm_backends.py, docs/benchmarks.md).
/// Throws Error where !onednn_linear_applies().
at::Tensor onednn_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace adaptertune
