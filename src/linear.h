#pragma once
// A Linear module's forward pass through the library's product (adaptertune/layers/linear.h).

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include "adaptertune/layers/linear.h"

namespace adaptertune {

// linear(x, weight, bias) itself is public (adaptertune/layers/linear.h). Every Linear on the
// forward path of an encoder layer goes through it rather than torch::nn::Linear's forward, which
// in LibTorch's C++ frontend runs matmul and then adds the bias in a second pass over the output,
// allocating and touching it twice (the attention runs query, key and value as one product over
// their joined weights).

/// linear(x, weight, bias) with `layer`'s weight and bias.
inline at::Tensor linear(const torch::nn::LinearImpl& layer, const at::Tensor& x) {
  return linear(x, layer.weight, layer.bias);
}

inline at::Tensor linear(const torch::nn::Linear& layer, const at::Tensor& x) {
  return linear(*layer, x);
}

/// linear_activation(x, weight, bias, activation) with `layer`'s weight and bias.
inline at::Tensor linear_activation(const torch::nn::LinearImpl& layer, const at::Tensor& x,
                                    Activation activation) {
  return linear_activation(x, layer.weight, layer.bias, activation);
}

inline at::Tensor linear_activation(const torch::nn::Linear& layer, const at::Tensor& x,
                                    Activation activation) {
  return linear_activation(*layer, x, activation);
}

}  // namespace adaptertune
