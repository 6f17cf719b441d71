#pragma once
/// @file linear.h
/// The matrix product of the encoder's Linear layers, for code that wants the same one.

#include <vector>

#include <ATen/core/Tensor.h>

#include "adaptertune/activation_name.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

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

/// While alive, the bfloat16 forward products (linear(), x W^T on the CPU through oneDNN) of
/// `module`'s frozen bfloat16 weights read W from a copy in the blocked layout oneDNN's kernels
/// multiply, made at the weight's first product (and again after an in-place write through the
/// tensor the product reads, which moves its version counter), instead of oneDNN laying W out
/// anew inside every call: about 1.07x a bert-base bfloat16 Houlsby step (docs/benchmarks.md).
/// The same kernels on the same values, so the same bits (tests). The copies cost two bytes per
/// weight value used while the scope lives; the parameters themselves are untouched. Covered are
/// the frozen two-dimensional bfloat16 parameters on the CPU when it is made (views of one block,
/// as FrozenProjectionsPacked makes of the attention's projections, share it): make it after
/// FrozenLinearWeightsInDtype and FrozenProjectionsPacked, and let it go before them. A weight
/// given new storage meanwhile (set_data(), Module::to()) is no longer covered. Gradients'
/// products, float32 and other devices are not affected. A TrainingEngine keeps one
/// (TrainingEngineOptions::prepack_frozen_weights), and so does a Predictor
/// (PredictorOptions::prepack_frozen_weights).
class FrozenLinearWeightsPrepacked {
 public:
  explicit FrozenLinearWeightsPrepacked(torch::nn::Module& module);
  ~FrozenLinearWeightsPrepacked();
  FrozenLinearWeightsPrepacked(const FrozenLinearWeightsPrepacked&) = delete;
  FrozenLinearWeightsPrepacked& operator=(const FrozenLinearWeightsPrepacked&) = delete;

  /// How many storages it covers.
  int64_t covered() const { return static_cast<int64_t>(storages_.size()); }
  /// How many prepacked copies exist now, made under every instance alive.
  static int64_t copies();

 private:
  // Held, so that a covered storage cannot be freed and its address reused while covered.
  std::vector<c10::Storage> storages_;
};

}  // namespace adaptertune
