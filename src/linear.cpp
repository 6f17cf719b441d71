#include "adaptertune/layers/linear.h"

#include "adaptertune/layers/activation.h"
#include "onednn_products.h"

namespace adaptertune {

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (onednn_linear_applies(x, weight, bias)) return onednn_linear(x, weight, bias);
  return at::linear(x, weight, bias);
}

at::Tensor linear_activation(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             Activation activation) {
  // onednn_linear() fuses the activation where it records no gradient, and applies it after the
  // product where it does.
  if (onednn_linear_applies(x, weight, bias)) return onednn_linear(x, weight, bias, activation);
  return apply_activation(activation, at::linear(x, weight, bias));
}

}  // namespace adaptertune
