#pragma once
/// @file activation_name.h
/// Activation functions by name, as Hugging Face and AdapterHub configs write them: what a
/// config validates without LibTorch. layers/activation.h applies them.

#include <string>

namespace adaptertune {

/// An element-wise nonlinearity.
enum class Activation { kGelu, kGeluTanh, kRelu, kSilu, kTanh, kIdentity };

/// Parses a Hugging Face / AdapterHub activation name ("gelu", "gelu_new", "gelu_pytorch_tanh",
/// "relu", "silu", "swish", "tanh", "linear"). Case-insensitive. Throws Error naming `context`
/// (e.g. "config.json: hidden_act") for anything else.
Activation parse_activation(const std::string& name, const std::string& context);

/// The canonical name of `activation` (the one parse_activation() reads back).
std::string activation_name(Activation activation);

}  // namespace adaptertune
