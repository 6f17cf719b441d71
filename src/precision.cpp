#include "adaptertune/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>
#include <torch/version.h>

#include "adaptertune/error.h"

// LibTorch 2.4 replaced the per-device autocast functions by ones that take a device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define ADAPTERTUNE_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace adaptertune {
namespace {

bool autocast_enabled(bool cuda) {
#ifdef ADAPTERTUNE_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

void set_autocast(bool cuda, bool enabled, at::ScalarType dtype) {
#ifdef ADAPTERTUNE_AUTOCAST_BY_DEVICE_TYPE
  const auto type = cuda ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, enabled);
#else
  if (cuda) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

at::ScalarType autocast_dtype(bool cuda) {
#ifdef ADAPTERTUNE_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

}  // namespace

c10::ScalarType matmul_dtype(c10::Device device, c10::ScalarType tensor_dtype) {
  if (!device.is_cuda() && !device.is_cpu()) return tensor_dtype;
  return autocast_enabled(device.is_cuda()) ? autocast_dtype(device.is_cuda()) : tensor_dtype;
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32" || name == "float32") return Precision::kFloat32;
  if (name == "bf16" || name == "bfloat16") return Precision::kBFloat16;
  if (name == "fp16" || name == "float16") return Precision::kFloat16;
  throw Error("unknown precision \"" + name + "\" (expected fp32, bf16 or fp16)");
}

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::kFloat32:
      return "fp32";
    case Precision::kBFloat16:
      return "bf16";
    case Precision::kFloat16:
      return "fp16";
  }
  return "fp32";
}

AutocastGuard::AutocastGuard(c10::Device device, Precision precision) {
  if (precision == Precision::kFloat32) return;
  cuda_ = device.is_cuda();
  if (!cuda_ && !device.is_cpu()) {
    throw Error("autocast: device " + device.str() + " is not supported (cpu or cuda)");
  }
  if (!cuda_ && precision == Precision::kFloat16) {
    throw Error("autocast: fp16 is not supported on CPU; use bf16");
  }
  was_enabled_ = autocast_enabled(cuda_);
  previous_dtype_ = static_cast<int>(autocast_dtype(cuda_));
  set_autocast(cuda_, true, precision == Precision::kBFloat16 ? at::kBFloat16 : at::kHalf);
  at::autocast::increment_nesting();
  active_ = true;
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  // The cache holds low-precision copies of weights for this forward/backward; free it when the
  // outermost guard ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(cuda_, was_enabled_, static_cast<at::ScalarType>(previous_dtype_));
}

int64_t store_frozen_linear_weights(torch::nn::Module& module, Precision precision) {
  if (precision == Precision::kFloat32) return 0;
  const at::ScalarType dtype = precision == Precision::kBFloat16 ? at::kBFloat16 : at::kHalf;
  torch::NoGradGuard no_grad;
  int64_t converted = 0;
  for (const auto& child : module.modules(/*include_self=*/true)) {
    auto* linear = child->as<torch::nn::Linear>();
    if (linear == nullptr) continue;
    at::Tensor& weight = linear->weight;
    if (weight.requires_grad() || weight.scalar_type() != at::kFloat) continue;
    // set_data keeps the parameter the module registered (and its name), with new storage.
    weight.set_data(weight.to(dtype));
    ++converted;
  }
  return converted;
}

}  // namespace adaptertune
