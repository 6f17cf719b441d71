#pragma once
// Private argument checks shared by the layers and heads: each throws Error with the name and
// shape (or device, or value) of the offending tensor and what was expected, so that a caller's
// mistake never reaches LibTorch's own errors.

#include <string>

#include <ATen/core/Tensor.h>

namespace adaptertune::detail {

/// "[2, 7]" for a tensor of that shape; "undefined" for an undefined tensor.
std::string shape_string(const at::Tensor& tensor);
/// "Long [2, 7]": dtype and shape; "undefined" for an undefined tensor.
std::string tensor_string(const at::Tensor& tensor);

/// `tensor` must lie on `device`, where `whose` says what else is there ("the model's weights").
void check_device(const at::Tensor& tensor, const std::string& name, const at::Device& device,
                  const std::string& whose);

/// On CPU, the values of the int64 tensor `values` must lie in [0, limit) (on other devices the
/// check would cost a device sync per call).
void check_value_range(const at::Tensor& values, const std::string& name, int64_t limit);

/// `ids` must be a 2-D int64 [batch, seq] tensor with seq ≥ 1 on `device` (the model's), its
/// values in [0, limit) (check_value_range()).
void check_token_ids(const at::Tensor& ids, const std::string& name, int64_t limit,
                     const at::Device& device);

/// `tensor` must have the shape of `reference` and lie on its device.
void check_same_shape_and_device(const at::Tensor& tensor, const at::Tensor& reference,
                                 const std::string& name, const std::string& reference_name);

}  // namespace adaptertune::detail
