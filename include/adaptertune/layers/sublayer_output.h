#pragma once
/// @file sublayer_output.h
/// The end of every BERT sublayer: projection, dropout, adapters, residual add and LayerNorm.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/adapters/bottleneck_adapter.h"

namespace adaptertune {

/// Options of SublayerOutput.
struct SublayerOutputOptions {
  SublayerOutputOptions(int64_t in_features, int64_t hidden_size)
      : in_features_(in_features), hidden_size_(hidden_size) {}
  /// Width of the sublayer's result before projection (hidden size after attention, the
  /// intermediate size after the feed-forward up-projection).
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(double, layer_norm_eps) = 1e-12;
};

/// `LayerNorm(dropout(dense(h)) + x)` where `x` is the sublayer's input: Hugging Face's
/// `BertSelfOutput` (as `attention.output`) and `BertOutput` (as `output`) share this shape.
/// Bottleneck adapters live here under `adapters.<name>` (AdapterHub's names); the active one
/// is applied to the projected output as described in AdapterConfig.
class SublayerOutputImpl : public torch::nn::Module {
 public:
  explicit SublayerOutputImpl(const SublayerOutputOptions& options);

  /// `hidden` is the sublayer's result [batch, seq, in_features]; `input` its input
  /// [batch, seq, hidden_size].
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& input);

  /// Adds an adapter called `name` (replacing none: throws Error if the name exists).
  void add_adapter(const std::string& name, const AdapterConfig& config);
  /// Removes the adapter `name`; deactivates it first if active.
  void remove_adapter(const std::string& name);
  /// Makes `name` the adapter applied in forward(); std::nullopt applies none.
  void set_active_adapter(const std::optional<std::string>& name);
  bool has_adapter(const std::string& name) const;
  std::optional<std::string> active_adapter() const { return active_name_; }

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};  // NOLINT: Hugging Face's name
  torch::nn::Dropout dropout{nullptr};
  torch::nn::ModuleDict adapters{nullptr};

 private:
  SublayerOutputOptions options_;
  std::optional<std::string> active_name_;
  BottleneckAdapter active_{nullptr};
};
TORCH_MODULE(SublayerOutput);

}  // namespace adaptertune
