#include "shape_check.h"

#include <ATen/ATen.h>

#include "adaptertune/error.h"

namespace adaptertune::detail {

std::string shape_string(const at::Tensor& tensor) {
  if (!tensor.defined()) return "undefined";
  std::string out = "[";
  for (int64_t i = 0; i < tensor.dim(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(tensor.size(i));
  }
  return out + "]";
}

std::string tensor_string(const at::Tensor& tensor) {
  if (!tensor.defined()) return "undefined";
  return std::string(c10::toString(tensor.scalar_type())) + " " + shape_string(tensor);
}

void check_device(const at::Tensor& tensor, const std::string& name, const at::Device& device,
                  const std::string& whose) {
  if (tensor.device() != device) {
    throw Error(name + ": on " + tensor.device().str() + ", expected " + device.str() + " (" +
                whose + ")");
  }
}

void check_value_range(const at::Tensor& values, const std::string& name, int64_t limit) {
  if (!values.device().is_cpu() || values.numel() == 0) return;
  auto [min, max] = at::aminmax(values);
  const int64_t lo = min.item<int64_t>();
  const int64_t hi = max.item<int64_t>();
  if (lo < 0 || hi >= limit) {
    throw Error(name + ": values must lie in [0, " + std::to_string(limit) + "), found " +
                std::to_string(lo < 0 ? lo : hi));
  }
}

void check_token_ids(const at::Tensor& ids, const std::string& name, int64_t limit,
                     const at::Device& device) {
  if (!ids.defined()) throw Error(name + ": tensor is undefined");
  if (ids.dim() != 2 || ids.size(1) < 1) {
    throw Error(name + ": expected shape [batch, seq] with seq >= 1, got " + shape_string(ids));
  }
  if (ids.scalar_type() != at::kLong) {
    throw Error(name + ": expected dtype int64, got " +
                std::string(c10::toString(ids.scalar_type())));
  }
  check_device(ids, name, device, "the model's weights");
  check_value_range(ids, name, limit);
}

void check_same_shape_and_device(const at::Tensor& tensor, const at::Tensor& reference,
                                 const std::string& name, const std::string& reference_name) {
  if (!tensor.sizes().equals(reference.sizes())) {
    throw Error(name + ": expected shape " + shape_string(reference) + " (as " + reference_name +
                "), got " + shape_string(tensor));
  }
  check_device(tensor, name, reference.device(), "as " + reference_name);
}

}  // namespace adaptertune::detail
