#pragma once
/// @file linear.h
/// The matrix product of the encoder's Linear layers, for code that wants the same one.

#include <ATen/core/Tensor.h>

namespace adaptertune {

/// `x W^T + b` (`weight` [out, in], `bias` [out] or undefined), as every Linear layer of the
/// encoder, its adapters and the masked-LM head compute it, with autograd. Float32 CPU tensors
/// outside autocast go through oneDNN's matrix products in a build with oneDNN (Debian's LibTorch
/// would run OpenBLAS, with kernels that depend on the CPU it detects); everything else through
/// at::linear: one addmm with the bias folded in. The benchmark's roofline times this product.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight,
                  const at::Tensor& bias = at::Tensor());

}  // namespace adaptertune
