#pragma once
/// @file activation.h
/// Activation functions applied to tensors, and as a module (names: activation_name.h).

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/activation_name.h"

namespace adaptertune {

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
