#include "parameter_assignment.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "adaptertune/error.h"
#include "shape_check.h"

namespace adaptertune::detail {

void ParameterAssignment::add(const std::string& parameter_name, const at::Tensor& parameter,
                              const std::string& tensor_name, const at::Tensor& value) {
  if (pairs_.count(parameter_name) != 0) {
    throw Error(source_ + ": tensors for \"" + parameter_name + "\" appear twice (as \"" +
                tensor_name + "\")");
  }
  if (!value.sizes().equals(parameter.sizes())) {
    throw Error(source_ + ": tensor \"" + tensor_name + "\" has shape " + shape_string(value) +
                ", the model's \"" + parameter_name + "\" needs " + shape_string(parameter));
  }
  if (!value.is_floating_point()) {
    throw Error(source_ + ": tensor \"" + tensor_name + "\" has dtype " +
                c10::toString(value.scalar_type()) + ", expected floating point");
  }
  pairs_[parameter_name] = Pair{parameter, value};
}

bool ParameterAssignment::contains(const std::string& parameter_name) const {
  return pairs_.count(parameter_name) != 0;
}

void ParameterAssignment::copy_all() const {
  torch::NoGradGuard no_grad;
  for (const auto& [name, pair] : pairs_) {
    at::Tensor parameter = pair.parameter;  // shares storage: copy_ writes the model's tensor
    parameter.copy_(pair.value.to(parameter.device(), parameter.scalar_type()));
  }
}

}  // namespace adaptertune::detail
