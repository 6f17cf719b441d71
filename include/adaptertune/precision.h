#pragma once
/// @file precision.h
/// Mixed-precision compute for training and inference.

#include <cstdint>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace adaptertune {

/// The precision matrix products run in. Parameters (and the optimizer state) stay float32 in
/// every case; bf16/fp16 use LibTorch's autocast, which casts inputs of matmul-like ops down and
/// keeps reductions (softmax, LayerNorm, losses) in float32.
enum class Precision { kFloat32, kBFloat16, kFloat16 };

/// "fp32", "bf16" or "fp16" (also "float32", "bfloat16", "float16"); throws Error otherwise.
Precision parse_precision(const std::string& name);
std::string precision_name(Precision precision);

/// The dtype that matrix products on `device` run in at this moment: autocast's dtype while an
/// AutocastGuard (or Python-style autocast) is active for that device type, else `tensor_dtype`.
c10::ScalarType matmul_dtype(c10::Device device, c10::ScalarType tensor_dtype);

/// Turns autocast on for `device`'s type with `precision`'s dtype while it lives (nothing for
/// kFloat32), and restores the previous state afterwards. Wrap the forward pass and the loss;
/// run backward() after the guard ends (backward ops follow the dtypes the forward recorded).
/// fp16 on CPU is refused (Error): LibTorch's CPU autocast supports bf16 only.
class AutocastGuard {
 public:
  AutocastGuard(c10::Device device, Precision precision);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  int previous_dtype_ = 0;
};

/// For inference under AutocastGuard(device, `precision`): stores the weight of every
/// torch::nn::Linear in `module` that does not require grad in `precision`'s dtype (bf16, or fp16)
/// once, where autocast would otherwise cast it anew on every forward pass (autocast caches casts
/// of trainable weights only). Under that guard the outputs do not change, bit for bit: autocast
/// rounds float32 to the lower precision the same way, and biases, LayerNorms and embeddings stay
/// float32. The casts are gone and those weights take half the memory. Without the guard, a
/// forward pass then fails on mixed dtypes, so only models that run under it (a Predictor with
/// that precision) should be converted. Does nothing for kFloat32; returns how many weights it
/// converted.
int64_t store_frozen_linear_weights(torch::nn::Module& module, Precision precision);

}  // namespace adaptertune
