#pragma once
// Private argument checks shared by the layers: each throws Error with the name and shape of the
// offending tensor and what was expected.

#include <string>

#include <ATen/core/Tensor.h>

namespace adaptertune::detail {

/// "[2, 7]" for a tensor of that shape.
std::string shape_string(const at::Tensor& tensor);

/// `ids` must be a 2-D int64 [batch, seq] tensor with seq ≥ 1; on CPU its values must lie in
/// [0, limit) (on other devices the check would cost a device sync per call).
void check_token_ids(const at::Tensor& ids, const std::string& name, int64_t limit);

/// `tensor` must have the same shape as `reference`.
void check_same_shape(const at::Tensor& tensor, const at::Tensor& reference,
                      const std::string& name, const std::string& reference_name);

}  // namespace adaptertune::detail
