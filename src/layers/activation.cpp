#include "adaptertune/layers/activation.h"

#include <torch/nn/functional/activation.h>

#include "gelu.h"
#include "silu.h"

namespace adaptertune {

torch::Tensor apply_activation(Activation activation, const torch::Tensor& input) {
  switch (activation) {
    case Activation::kGelu:
      return gelu_erf(input);  // at::gelu, with faster CPU kernels (float32 backward, bfloat16)
    case Activation::kGeluTanh:
      return at::gelu(input, "tanh");
    case Activation::kRelu:
      return at::relu(input);
    case Activation::kSilu:
      return swish(input);  // at::silu, with a bfloat16 kernel on the CPU
    case Activation::kTanh:
      return at::tanh(input);
    case Activation::kIdentity:
      return input;
  }
  return input;
}

}  // namespace adaptertune
