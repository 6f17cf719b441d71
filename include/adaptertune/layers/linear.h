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

/// Which frozen weights a FrozenLinearWeightsPrepacked covers.
enum class PrepackedDtypes {
  /// bfloat16 weights only: a TrainingEngine's choice (float32 copies would cost four bytes per
  /// weight value for a training step about as fast at bert-base's shape, docs/benchmarks.md),
  /// and set_up_for_inference()'s default (bfloat16 copies keep every bit).
  kBFloat16,
  /// bfloat16 and float32 weights: a Predictor's, where a float32 product of a prepacked weight
  /// runs a per-shape kernel that does not lay the weight out inside every call: 2.4-3.4x one
  /// short request, 1.1-1.2x SST-2 dev, the same values up to float32 rounding. (`eval` and
  /// `predict` on files keep kBFloat16, so that they give a training run's bits.)
  kBFloat16AndFloat32,
};

/// While alive, the forward products (linear(), x W^T on the CPU through oneDNN) of `module`'s
/// frozen weights of the chosen dtypes read W from a copy in the blocked layout oneDNN's kernels
/// multiply, made at the weight's first product (and again after an in-place write through the
/// tensor the product reads, which moves its version counter), instead of oneDNN laying W out
/// anew inside every call: about 1.07x a bert-base bfloat16 Houlsby step (docs/benchmarks.md).
/// Bfloat16: the same kernels on the same values, so the same bits (tests). Float32: a per-shape
/// kernel in place of the run-time-sized one, so the same values up to the order of the sums
/// (tests). The copies cost the weight's own size (two bytes per value in bfloat16, four in
/// float32) for each weight used while the scope lives; the parameters themselves are untouched.
/// Covered are the frozen two-dimensional parameters of the chosen dtypes on the CPU when it is
/// made (views of one block, as FrozenProjectionsPacked makes of the attention's projections,
/// share it): make it after FrozenLinearWeightsInDtype and FrozenProjectionsPacked, and let it go
/// before them. A weight given new storage meanwhile (set_data(), Module::to()) is no longer
/// covered. Gradients' products and other devices are not affected. A TrainingEngine keeps one
/// (TrainingEngineOptions::prepack_frozen_weights), and so does a Predictor
/// (PredictorOptions::prepack_frozen_weights).
class FrozenLinearWeightsPrepacked {
 public:
  explicit FrozenLinearWeightsPrepacked(torch::nn::Module& module,
                                        PrepackedDtypes dtypes = PrepackedDtypes::kBFloat16);
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
