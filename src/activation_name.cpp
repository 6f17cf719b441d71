#include "adaptertune/activation_name.h"

#include <algorithm>
#include <cctype>

#include "adaptertune/error.h"

namespace adaptertune {

Activation parse_activation(const std::string& name, const std::string& context) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "gelu") return Activation::kGelu;
  if (lower == "gelu_new" || lower == "gelu_pytorch_tanh" || lower == "gelu_fast") {
    return Activation::kGeluTanh;
  }
  if (lower == "relu") return Activation::kRelu;
  if (lower == "silu" || lower == "swish") return Activation::kSilu;
  if (lower == "tanh") return Activation::kTanh;
  if (lower == "linear" || lower == "identity") return Activation::kIdentity;
  throw Error(context + ": unknown activation \"" + name +
              "\" (expected gelu, gelu_new, relu, silu/swish, tanh or linear)");
}

std::string activation_name(Activation activation) {
  switch (activation) {
    case Activation::kGelu:
      return "gelu";
    case Activation::kGeluTanh:
      return "gelu_new";
    case Activation::kRelu:
      return "relu";
    case Activation::kSilu:
      return "silu";
    case Activation::kTanh:
      return "tanh";
    case Activation::kIdentity:
      return "linear";
  }
  return "linear";
}

}  // namespace adaptertune
