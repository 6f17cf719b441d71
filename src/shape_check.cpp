#include "shape_check.h"

#include <ATen/ATen.h>

#include "adaptertune/error.h"

namespace adaptertune::detail {

std::string shape_string(const at::Tensor& tensor) {
  std::string out = "[";
  for (int64_t i = 0; i < tensor.dim(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(tensor.size(i));
  }
  return out + "]";
}

void check_token_ids(const at::Tensor& ids, const std::string& name, int64_t limit) {
  if (!ids.defined()) throw Error(name + ": tensor is undefined");
  if (ids.dim() != 2 || ids.size(1) < 1) {
    throw Error(name + ": expected shape [batch, seq] with seq >= 1, got " + shape_string(ids));
  }
  if (ids.scalar_type() != at::kLong) {
    throw Error(name + ": expected dtype int64, got " +
                std::string(c10::toString(ids.scalar_type())));
  }
  if (ids.device().is_cpu() && ids.numel() > 0) {
    auto [min, max] = at::aminmax(ids);
    int64_t lo = min.item<int64_t>();
    int64_t hi = max.item<int64_t>();
    if (lo < 0 || hi >= limit) {
      throw Error(name + ": values must lie in [0, " + std::to_string(limit) + "), found " +
                  std::to_string(lo < 0 ? lo : hi));
    }
  }
}

void check_same_shape(const at::Tensor& tensor, const at::Tensor& reference,
                      const std::string& name, const std::string& reference_name) {
  if (!tensor.sizes().equals(reference.sizes())) {
    throw Error(name + ": expected shape " + shape_string(reference) + " (as " + reference_name +
                "), got " + shape_string(tensor));
  }
}

}  // namespace adaptertune::detail
