#include "adaptertune/layers/linear.h"

#include <torch/nn/module.h>

#include "adaptertune/layers/activation.h"
#include "onednn_products.h"

namespace adaptertune {

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return linear_activation(x, weight, bias, Activation::kIdentity);  // kIdentity: no activation
}

at::Tensor linear_activation(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             Activation activation) {
  // The one place that picks the product. onednn_linear() fuses the activation under
  // InferenceMode and applies it after the product elsewhere.
  if (onednn_linear_applies(x, weight, bias)) return onednn_linear(x, weight, bias, activation);
  return apply_activation(activation, at::linear(x, weight, bias));
}

at::Tensor linear_add(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                      double scale, const std::vector<at::Tensor>& addends) {
  if (onednn_linear_add_applies(x, weight, bias, addends))
    return onednn_linear_add(x, weight, bias, scale, addends);
  at::Tensor out = linear(x, weight, bias);
  if (scale != 1.0) out = out * scale;
  for (const at::Tensor& addend : addends) out = out + addend;
  return out;
}

FrozenLinearWeightsPrepacked::FrozenLinearWeightsPrepacked(torch::nn::Module& module) {
  try {
    for (const at::Tensor& parameter : module.parameters()) {
      if (parameter.requires_grad() || parameter.dim() != 2 ||
          parameter.scalar_type() != at::kBFloat16 || !parameter.device().is_cpu()) {
        continue;
      }
      const c10::Storage& storage = parameter.storage();
      bool seen = false;
      for (const c10::Storage& held : storages_) seen = seen || held.is_alias_of(storage);
      if (seen) continue;
      storages_.push_back(storage);
      try {
        cover_with_prepacked_weights(storage);
      } catch (...) {
        storages_.pop_back();
        throw;
      }
    }
  } catch (...) {
    // No destructor runs for a constructor that throws: undo the covers made.
    for (const c10::Storage& storage : storages_) uncover_prepacked_weights(storage);
    throw;
  }
}

FrozenLinearWeightsPrepacked::~FrozenLinearWeightsPrepacked() {
  for (const c10::Storage& storage : storages_) uncover_prepacked_weights(storage);
}

int64_t FrozenLinearWeightsPrepacked::copies() {
  return prepacked_weight_copies();
}

}  // namespace adaptertune
