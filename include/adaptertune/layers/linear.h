#pragma once
/// @file linear.h
/// The matrix product of the encoder's Linear layers, for code that wants the same one.

#include <ATen/core/Tensor.h>

#include "adaptertune/activation_name.h"

namespace adaptertune {

/// `x W^T + b` (`weight` [out, in], `bias` [out] or undefined), as every Linear layer of the
/// encoder, its adapters and the masked-LM head compute it, with autograd. Float32 CPU tensors
/// outside autocast go through oneDNN's matrix products in a build with oneDNN (Debian's LibTorch
/// would run OpenBLAS, with kernels that depend on the CPU it detects), and so do bfloat16
/// products on the CPU (the same bits as at::linear under autocast, forward and backward, without
/// its copy of the bias into the output); everything else through at::linear: one addmm with the
/// bias folded in. The benchmark's roofline times this product.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight,
                  const at::Tensor& bias = at::Tensor());

/// `activation(x W^T + b)`: apply_activation(activation, linear(x, weight, bias)) (layers/
/// activation.h), except that under c10::InferenceMode (a Predictor, evaluation), where linear()
/// runs oneDNN's product, the activation is computed inside the product, on its float32 sums: one
/// pass over the result instead of two. In bfloat16 the activation then sees the sums before their
/// rounding to bfloat16 rather than after, so an output may differ from the unfused pair's in its
/// last bit; in float32 they agree up to the activation's own rounding. Outside InferenceMode the
/// result is the unfused pair's, bit for bit, with or without gradients.
at::Tensor linear_activation(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             Activation activation);

}  // namespace adaptertune
