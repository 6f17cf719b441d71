#pragma once
/// @file activation.h
/// Activation functions selected by name, as in Hugging Face configs.

#include <string>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace adaptertune {

/// An element-wise nonlinearity.
enum class Activation { kGelu, kGeluTanh, kRelu, kSilu, kTanh, kIdentity };

/// Parses a Hugging Face / AdapterHub activation name ("gelu", "gelu_new", "gelu_pytorch_tanh",
/// "relu", "silu", "swish", "tanh", "linear"). Case-insensitive. Throws Error naming `context`
/// (e.g. "config.json: hidden_act") for anything else.
Activation parse_activation(const std::string& name, const std::string& context);

/// The canonical name of `activation` (the one parse_activation() reads back).
std::string activation_name(Activation activation);

/// Applies `activation` to `input`.
torch::Tensor apply_activation(Activation activation, const torch::Tensor& input);

/// An activation as a module, so that it can sit inside a Sequential (AdapterHub's
/// `adapter_down` is `Sequential(Linear, activation)`, and its weight names depend on that).
class ActivationLayerImpl : public torch::nn::Module {
 public:
  explicit ActivationLayerImpl(Activation activation) : activation_(activation) {}
  torch::Tensor forward(const torch::Tensor& input) { return apply_activation(activation_, input); }
  Activation activation() const { return activation_; }

 private:
  Activation activation_;
};
TORCH_MODULE(ActivationLayer);

}  // namespace adaptertune
