#pragma once
// A Linear layer's forward pass through at::linear.

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

namespace adaptertune {

/// `x W^T + b` for `layer`. at::linear runs a contiguous [batch, seq, in] input as one addmm over
/// [batch * seq, in] with the bias folded into the product (a bias epilogue in cuBLASLt on CUDA),
/// while torch::nn::Linear's own forward in LibTorch's C++ frontend runs matmul and then adds the
/// bias in a second pass over the output, allocating and touching it twice. Same result, same
/// parameters; every other Linear on the forward path of an encoder layer goes through here
/// (the attention runs query, key and value as one at::linear over their joined weights).
inline at::Tensor linear(const torch::nn::LinearImpl& layer, const at::Tensor& x) {
  return at::linear(x, layer.weight, layer.bias);
}

inline at::Tensor linear(const torch::nn::Linear& layer, const at::Tensor& x) {
  return linear(*layer, x);
}

}  // namespace adaptertune
