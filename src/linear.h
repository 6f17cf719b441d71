#pragma once
// A Linear module's forward pass through the library's product (adaptertune/layers/linear.h).

#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>

#include "adaptertune/layers/linear.h"

namespace adaptertune {

// linear(x, weight, bias) itself is public (adaptertune/layers/linear.h). Every Linear on the
// forward path of an encoder layer goes through it rather than torch::nn::Linear's forward, which
// in LibTorch's C++ frontend runs matmul and then adds the bias in a second pass over the output,
// allocating and touching it twice (the attention runs query, key and value as one product over
// their joined weights).

/// `scale (x W^T + b) + addends[0] + addends[1] ...`: a Linear layer followed by its residual
/// additions (the adapters' skip connections, a sublayer's input before its LayerNorm). Under
/// c10::InferenceMode, where linear() runs oneDNN's bfloat16 product and the addends are dense
/// and shaped as its result, the scale and the additions run inside the product
/// (onednn_linear_add(): one pass, on the float32 sums, so results may move in their last bits).
/// Elsewhere, and with gradients, the unfused steps in that order, bit for bit: linear(), then
/// `* scale` where scale is not 1, then each addition with LibTorch's type promotion.
at::Tensor linear_add(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                      double scale, const std::vector<at::Tensor>& addends);

inline at::Tensor linear_add(const torch::nn::LinearImpl& layer, const at::Tensor& x, double scale,
                             const std::vector<at::Tensor>& addends) {
  return linear_add(x, layer.weight, layer.bias, scale, addends);
}

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
