#include "adaptertune/precision.h"

#include <unordered_map>

#include <ATen/autocast_mode.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>
#include <torch/version.h>

#include "adaptertune/error.h"
#include "heap_pages.h"
#include "module_walk.h"

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

void check_precision(c10::Device device, Precision precision) {
  if (precision == Precision::kFloat32) return;
  if (!device.is_cuda() && !device.is_cpu()) {
    throw Error("precision " + precision_name(precision) + ": device " + device.str() +
                " is not supported (cpu or cuda)");
  }
  if (device.is_cpu() && precision == Precision::kFloat16) {
    throw Error(
        "precision fp16 is not supported on the CPU (LibTorch's CPU autocast has bf16 "
        "only); use bf16, or fp16 on cuda");
  }
}

Precision inference_precision(const std::optional<Precision>& asked,
                              const std::optional<Precision>& recorded, c10::Device device,
                              std::string* warning) {
  if (asked) {
    check_precision(device, *asked);
    return *asked;
  }
  if (!recorded) return Precision::kFloat32;
  if (*recorded == Precision::kFloat16 && device.is_cpu()) {
    // Packs trained in fp16 on a GPU, run on the CPU.
    if (warning) {
      *warning =
          "the adapter packs were trained in fp16, which the CPU cannot run: predicting "
          "in fp32 (or ask for bf16)";
    }
    return Precision::kFloat32;
  }
  check_precision(device, *recorded);
  return *recorded;
}

AutocastGuard::AutocastGuard(c10::Device device, Precision precision) {
  if (precision == Precision::kFloat32) return;
  check_precision(device, precision);
  cuda_ = device.is_cuda();
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

namespace {

c10::ScalarType low_precision_dtype(Precision precision) {
  return precision == Precision::kBFloat16 ? at::kBFloat16 : at::kHalf;
}

// The weights of `module`'s torch::nn::Linear modules that do not require grad and are float32:
// those autocast casts on every use. A weight registered under a second name (a decoder tied to
// the word embeddings) is left out: its other user may not run under autocast.
std::vector<at::Tensor> frozen_float32_linear_weights(torch::nn::Module& module) {
  std::unordered_map<const void*, int> registrations;
  for (const auto& item : module.named_parameters()) {
    ++registrations[item.value().unsafeGetTensorImpl()];
  }
  std::vector<at::Tensor> weights;
  auto consider = [&](torch::nn::Module& candidate) {
    auto* linear = candidate.as<torch::nn::Linear>();
    if (linear == nullptr) return;
    const at::Tensor& weight = linear->weight;
    if (!weight.requires_grad() && weight.scalar_type() == at::kFloat &&
        registrations[weight.unsafeGetTensorImpl()] == 1) {
      weights.push_back(weight);
    }
  };
  for_each_module(module, consider);
  return weights;
}

}  // namespace

int64_t store_frozen_linear_weights(torch::nn::Module& module, Precision precision) {
  if (precision == Precision::kFloat32) return 0;
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> weights = frozen_float32_linear_weights(module);
  // set_data keeps the parameter the module registered (and its name), with new storage.
  for (at::Tensor& weight : weights) weight.set_data(weight.to(low_precision_dtype(precision)));
  return static_cast<int64_t>(weights.size());
}

FrozenLinearWeightsInDtype::FrozenLinearWeightsInDtype(torch::nn::Module& module,
                                                       Precision precision) {
  if (precision == Precision::kFloat32) return;
  dtype_ = low_precision_dtype(precision);
  torch::NoGradGuard no_grad;
  // Every copy first, then every swap: the copies come out of fresh memory next to each other,
  // and the float32 blocks, freed together, merge into one free region that activations fit in
  // again. Swapping one weight at a time scatters the copies over the freed blocks, and the
  // fragments left raised the peak of a bert-base step by 150 MiB instead of lowering it.
  std::vector<at::Tensor> copies;
  for (at::Tensor& weight : frozen_float32_linear_weights(module)) {
    at::Tensor low = weight.to(dtype_);
    // Only where the round trip is exact: restore() must give back the very values, and the
    // base's identity (hashed in float32) must not change.
    if (!at::equal(low.to(at::kFloat), weight)) {
      ++kept_in_float32_;
      continue;
    }
    stored_.push_back(weight);
    copies.push_back(std::move(low));
  }
  for (size_t i = 0; i < stored_.size(); ++i) stored_[i].set_data(copies[i]);
  copies.clear();
  // The freed float32 blocks would otherwise stay resident beside the activations.
  if (!stored_.empty()) release_free_heap_pages();
}

FrozenLinearWeightsInDtype::~FrozenLinearWeightsInDtype() {
  try {
    restore();
  } catch (...) {
    // Out of memory for the float32 copies: the weights stay in the lower precision, which a
    // forward pass under autocast still runs with. A destructor must not throw.
  }
}

int64_t FrozenLinearWeightsInDtype::stored() const {
  return static_cast<int64_t>(stored_.size());
}

void FrozenLinearWeightsInDtype::restore() {
  torch::NoGradGuard no_grad;
  for (at::Tensor& weight : stored_) {
    // Someone may have given it new data meanwhile (Module::to(), a load): leave that alone.
    if (weight.scalar_type() == dtype_) weight.set_data(weight.to(at::kFloat));
  }
  if (!stored_.empty()) release_free_heap_pages();
  stored_.clear();
}

}  // namespace adaptertune
