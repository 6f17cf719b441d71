#pragma once
/// @file precision.h
/// Mixed-precision compute for training and inference.

#include <cstdint>
#include <optional>
#include <string>

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <vector>

namespace at {
class Tensor;
}  // namespace at
namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace adaptertune {

/// The precision matrix products run in. Trainable parameters (and the optimizer state) stay
/// float32 in every case; bf16/fp16 use LibTorch's autocast, which casts inputs of matmul-like ops
/// down and keeps reductions (softmax, LayerNorm, losses) in float32. Frozen Linear weights may be
/// stored in the lower precision instead of being cast on every use (FrozenLinearWeightsInDtype,
/// store_frozen_linear_weights()), with the same results bit for bit.
enum class Precision { kFloat32, kBFloat16, kFloat16 };

/// "fp32", "bf16" or "fp16" (also "float32", "bfloat16", "float16"); throws Error otherwise.
Precision parse_precision(const std::string& name);
std::string precision_name(Precision precision);

/// Throws Error when `precision` cannot run on `device`: bf16/fp16 anywhere but the CPU and
/// CUDA, and fp16 on the CPU (LibTorch's CPU autocast has bf16 only). Options are checked with
/// it before a run writes anything; AutocastGuard checks it too.
void check_precision(c10::Device device, Precision precision);

/// The precision to predict in: `asked` (the caller's option) when given, checked with
/// check_precision(); else `recorded`, what the adapter packs were trained with, when there is
/// one; else fp32. A recorded fp16 on the CPU, which has no fp16 autocast, gives fp32 and a
/// line in `warning` (when given) that says so.
Precision inference_precision(const std::optional<Precision>& asked,
                              const std::optional<Precision>& recorded, c10::Device device,
                              std::string* warning = nullptr);

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
/// that precision) should be converted. A weight registered under a second name (tied to another
/// parameter) stays float32. Does nothing for kFloat32; returns how many weights it converted.
int64_t store_frozen_linear_weights(torch::nn::Module& module, Precision precision);

/// For training under AutocastGuard(device, `precision`): while it lives, the weight of every
/// torch::nn::Linear in `module` that does not require grad is stored in `precision`'s dtype (bf16
/// or fp16) wherever that loses nothing, i.e. the float32 values are exactly representable in it
/// (a base loaded from bf16 files, like the shipped one, is). Autocast would otherwise cast those
/// weights anew on every forward pass and keep the copies for backward (it caches casts of
/// trainable weights only), so the casts go and those weights take half the memory; the
/// results do not change, bit for bit. When it ends (or restore() is called) they are float32
/// again, with their original values, so nothing outside its lifetime sees a difference: saved
/// packs record the same base identity, and a float32 forward pass works again.
///
/// Inside its lifetime a forward pass must run under that AutocastGuard (a float32 one fails on
/// mixed dtypes). Weights that are not exactly representable, and tied ones (registered under a
/// second name), stay float32 and are cast as before. Trainable weights are never touched. Does
/// nothing for kFloat32. TrainingEngine keeps one for its run.
class FrozenLinearWeightsInDtype {
 public:
  FrozenLinearWeightsInDtype(torch::nn::Module& module, Precision precision);
  /// Restores (see restore()).
  ~FrozenLinearWeightsInDtype();
  FrozenLinearWeightsInDtype(const FrozenLinearWeightsInDtype&) = delete;
  FrozenLinearWeightsInDtype& operator=(const FrozenLinearWeightsInDtype&) = delete;

  /// Puts the stored weights back in float32 (exactly their original values); idempotent.
  void restore();
  /// How many weights are stored in the lower precision.
  int64_t stored() const;
  /// How many frozen float32 weights stay float32 because the lower precision would round them.
  int64_t kept_in_float32() const { return kept_in_float32_; }

 private:
  std::vector<at::Tensor> stored_;
  c10::ScalarType dtype_ = c10::ScalarType::Float;
  int64_t kept_in_float32_ = 0;
};

}  // namespace adaptertune
