#pragma once
// A Linear layer's forward pass: at::linear, or oneDNN's float32 products on the CPU.

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

namespace adaptertune {

/// `x W^T + b`. Float32 on the CPU goes through onednn_linear() where the build has oneDNN
/// (onednn_linear.h says why); everything else through at::linear, which runs a contiguous
/// [batch, seq, in] input as one addmm over [batch * seq, in] with the bias folded into the
/// product (a bias epilogue in cuBLASLt on CUDA), while torch::nn::Linear's own forward in
/// LibTorch's C++ frontend runs matmul and then adds the bias in a second pass over the output,
/// allocating and touching it twice. Same result, same parameters; every Linear on the forward
/// path of an encoder layer goes through here (the attention runs query, key and value as one
/// product over their joined weights).
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

/// linear() above with `layer`'s weight and bias.
inline at::Tensor linear(const torch::nn::LinearImpl& layer, const at::Tensor& x) {
  return linear(x, layer.weight, layer.bias);
}

inline at::Tensor linear(const torch::nn::Linear& layer, const at::Tensor& x) {
  return linear(*layer, x);
}

}  // namespace adaptertune
