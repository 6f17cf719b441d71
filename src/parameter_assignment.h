#pragma once
// Private: the one "check every tensor, then copy all or nothing" step that Hugging Face
// checkpoints, adapter packs and training checkpoints share, so that a bad file never leaves a
// model half loaded.

#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace adaptertune::detail {

/// Pairs of (model parameter, file tensor) collected and checked one by one; copy_all() changes
/// the model only after every pair was added without error.
class ParameterAssignment {
 public:
  /// `source` names the file in error messages.
  explicit ParameterAssignment(std::string source) : source_(std::move(source)) {}

  /// Checks that `value` (the file's tensor `tensor_name`) can be copied into `parameter` (the
  /// model's `parameter_name`): same shape, floating point, and no other tensor assigned to it.
  void add(const std::string& parameter_name, const at::Tensor& parameter,
           const std::string& tensor_name, const at::Tensor& value);
  bool contains(const std::string& parameter_name) const;
  size_t size() const { return pairs_.size(); }

  /// Copies every value into its parameter (converting dtype and device), without autograd.
  void copy_all() const;

 private:
  struct Pair {
    at::Tensor parameter;
    at::Tensor value;
  };
  std::string source_;
  std::map<std::string, Pair> pairs_;
};

}  // namespace adaptertune::detail
