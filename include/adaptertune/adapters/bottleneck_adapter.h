#pragma once
/// @file bottleneck_adapter.h
/// The bottleneck adapter module of Houlsby et al. (2019).

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/adapter_config.h"

namespace adaptertune {

/// A bottleneck adapter for a model of width `hidden_size`. Parameter names follow AdapterHub:
/// `adapter_down.0.{weight,bias}` (d→m, followed by the nonlinearity as `adapter_down.1`) and
/// `adapter_up.{weight,bias}` (m→d). 2·m·d + d + m parameters.
class BottleneckAdapterImpl : public torch::nn::Module {
 public:
  BottleneckAdapterImpl(int64_t hidden_size, const AdapterConfig& config);

  /// `up(act(down(h))) * scaling`, after dropout: the adapter's contribution without the skip
  /// connection.
  torch::Tensor delta(const torch::Tensor& hidden);
  /// The same before dropout: what AdapterFusion attends over (AdapterHub's `up`).
  torch::Tensor up(const torch::Tensor& hidden);
  /// `act(down(h))`: the bottleneck's activations, the up projection's input.
  torch::Tensor down(const torch::Tensor& hidden);

  /// What the adapter takes in at a site (AdapterConfig's `a`) and its skip connection (`r`).
  struct Inputs {
    torch::Tensor hidden;
    torch::Tensor residual;
  };
  /// Inputs at the end of a sublayer: `projected` is its projected output after dropout,
  /// `sublayer_input` its input, `layer_norm` its LayerNorm (AdapterHub's `pre_forward`).
  Inputs inputs(const torch::Tensor& projected, const torch::Tensor& sublayer_input,
                torch::nn::LayerNorm& layer_norm) const;

  /// Applies the adapter at the end of a sublayer, with placement as in AdapterConfig:
  /// `projected` is the sublayer's projected output after dropout, `sublayer_input` the
  /// sublayer's input (residual branch) and `layer_norm` the sublayer's own LayerNorm. Returns
  /// the sublayer's final output: finish(residual_output(...)). Where dropout is off (evaluation)
  /// the additions after the up projection run inside its product under c10::InferenceMode
  /// where that is a bfloat16 product on oneDNN, so that results may move in their last bits.
  torch::Tensor forward(const torch::Tensor& projected, const torch::Tensor& sublayer_input,
                        torch::nn::LayerNorm& layer_norm);

  /// forward() in two halves, for adapters stacked at one site (AdapterHub's Stack): the
  /// adapter's output with its skip connection, before the sublayer's residual add and
  /// LayerNorm (`o` in AdapterConfig's formula)...
  torch::Tensor residual_output(const torch::Tensor& projected, const torch::Tensor& sublayer_input,
                                torch::nn::LayerNorm& layer_norm);
  /// ...and what follows it: `LN(o + sublayer_input)` when original_ln_after, else `o`.
  torch::Tensor finish(const torch::Tensor& output, const torch::Tensor& sublayer_input,
                       torch::nn::LayerNorm& layer_norm) const;

  /// Re-draws the weights as `config().init` says.
  void reset_parameters();

  const AdapterConfig& config() const { return config_; }
  int64_t bottleneck_size() const { return bottleneck_size_; }

  torch::nn::Sequential adapter_down{nullptr};
  torch::nn::Linear adapter_up{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  AdapterConfig config_;
  int64_t bottleneck_size_;
};
TORCH_MODULE(BottleneckAdapter);

/// Parameters of one adapter: 2·m·d + d + m.
int64_t bottleneck_adapter_parameter_count(int64_t hidden_size, int64_t bottleneck_size);

}  // namespace adaptertune
