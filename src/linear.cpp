#include "adaptertune/layers/linear.h"

#include <vector>

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

FrozenLinearWeightsPrepacked::FrozenLinearWeightsPrepacked(torch::nn::Module& module,
                                                           PrepackedDtypes dtypes) {
  auto chosen = [dtypes](at::ScalarType type) {
    return type == at::kBFloat16 ||
           (type == at::kFloat && dtypes == PrepackedDtypes::kBFloat16AndFloat32);
  };
  std::vector<c10::Storage> frozen;
  for (const at::Tensor& parameter : module.parameters()) {
    if (parameter.requires_grad() || parameter.dim() != 2 || !chosen(parameter.scalar_type()) ||
        !parameter.device().is_cpu()) {
      continue;
    }
    const c10::Storage& storage = parameter.storage();
    bool seen = false;
    for (const c10::Storage& held : frozen) seen = seen || held.is_alias_of(storage);
    if (!seen) frozen.push_back(storage);
  }
  // Room first, so that recording a cover cannot throw after it is made.
  storages_.reserve(frozen.size());
  try {
    for (const c10::Storage& storage : frozen) {
      cover_with_prepacked_weights(storage);
      storages_.push_back(storage);
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
