#include "adaptertune/adapters/bottleneck_adapter.h"

#include <cmath>

#include <torch/nn/init.h>

#include "adaptertune/error.h"
#include "adaptertune/layers/activation.h"
#include "dropout.h"
#include "linear.h"

namespace adaptertune {
namespace {

// Fills `tensor` from normal(0, std) truncated to [-2 std, 2 std] by inverse-CDF sampling,
// as torch.nn.init.trunc_normal_ does (LibTorch 1.13's C++ API lacks it).
void truncated_normal_(torch::Tensor tensor, double std) {
  torch::NoGradGuard no_grad;
  const double cdf_low = 0.5 * (1.0 + std::erf(-2.0 / std::sqrt(2.0)));
  const double cdf_high = 0.5 * (1.0 + std::erf(2.0 / std::sqrt(2.0)));
  tensor.uniform_(2 * cdf_low - 1, 2 * cdf_high - 1);
  tensor.erfinv_();
  tensor.mul_(std * std::sqrt(2.0));
  tensor.clamp_(-2 * std, 2 * std);
}

}  // namespace

int64_t bottleneck_adapter_parameter_count(int64_t hidden_size, int64_t bottleneck_size) {
  return 2 * hidden_size * bottleneck_size + hidden_size + bottleneck_size;
}

BottleneckAdapterImpl::BottleneckAdapterImpl(int64_t hidden_size, const AdapterConfig& config)
    : config_(config) {
  config_.validate();
  bottleneck_size_ = config_.bottleneck_size(hidden_size);
  adapter_down = register_module(
      "adapter_down",
      torch::nn::Sequential(torch::nn::Linear(hidden_size, bottleneck_size_),
                            ActivationLayer(parse_activation(config_.non_linearity,
                                                             "AdapterConfig: 'non_linearity'"))));
  adapter_up = register_module("adapter_up", torch::nn::Linear(bottleneck_size_, hidden_size));
  dropout = register_module("dropout", torch::nn::Dropout(config_.dropout));
  reset_parameters();
}

void BottleneckAdapterImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  auto down = adapter_down[0]->as<torch::nn::Linear>();
  switch (config_.init) {
    case AdapterInit::kHoulsby:
      truncated_normal_(down->weight, config_.init_std);
      truncated_normal_(adapter_up->weight, config_.init_std);
      break;
    case AdapterInit::kMamAdapter:
      torch::nn::init::kaiming_uniform_(down->weight, std::sqrt(5.0));
      adapter_up->weight.zero_();
      break;
    case AdapterInit::kBert:
      down->weight.normal_(0.0, 0.02);
      adapter_up->weight.normal_(0.0, 0.02);
      break;
  }
  down->bias.zero_();
  adapter_up->bias.zero_();
}

torch::Tensor BottleneckAdapterImpl::down(const torch::Tensor& hidden) {
  // The library's product (linear.h); the activation is adapter_down's second module, as
  // AdapterHub names it, and runs inside the down projection's product where that can.
  return linear_activation(*adapter_down[0]->as<torch::nn::Linear>(), hidden,
                           adapter_down[1]->as<ActivationLayer>()->activation());
}

torch::Tensor BottleneckAdapterImpl::up(const torch::Tensor& hidden) {
  torch::Tensor out = linear(adapter_up, down(hidden));
  return config_.scaling != 1.0 ? out * config_.scaling : out;
}

torch::Tensor BottleneckAdapterImpl::delta(const torch::Tensor& hidden) {
  return hashed_dropout(dropout, up(hidden));
}

BottleneckAdapterImpl::Inputs BottleneckAdapterImpl::inputs(
    const torch::Tensor& projected, const torch::Tensor& sublayer_input,
    torch::nn::LayerNorm& layer_norm) const {
  Inputs in;
  // LayerNorm's operator() is not const; the module itself is not changed.
  in.hidden =
      config_.original_ln_before ? layer_norm->forward(projected + sublayer_input) : projected;
  in.residual = config_.residual_before_ln ? projected : in.hidden;
  return in;
}

torch::Tensor BottleneckAdapterImpl::forward(const torch::Tensor& projected,
                                             const torch::Tensor& sublayer_input,
                                             torch::nn::LayerNorm& layer_norm) {
  if (drops(dropout)) {
    return finish(residual_output(projected, sublayer_input, layer_norm), sublayer_input,
                  layer_norm);
  }
  // Without dropout the skip connection and the sublayer's residual addition follow the up
  // projection directly, and run inside its product where the library can (linear_add()).
  const Inputs in = inputs(projected, sublayer_input, layer_norm);
  std::vector<torch::Tensor> addends{in.residual};
  if (config_.original_ln_after) addends.push_back(sublayer_input);
  torch::Tensor output = linear_add(*adapter_up, down(in.hidden), config_.scaling, addends);
  // LayerNorm's operator() is not const; the module itself is not changed.
  return config_.original_ln_after ? layer_norm->forward(output) : output;
}

torch::Tensor BottleneckAdapterImpl::residual_output(const torch::Tensor& projected,
                                                     const torch::Tensor& sublayer_input,
                                                     torch::nn::LayerNorm& layer_norm) {
  const Inputs in = inputs(projected, sublayer_input, layer_norm);
  return delta(in.hidden) + in.residual;
}

torch::Tensor BottleneckAdapterImpl::finish(const torch::Tensor& output,
                                            const torch::Tensor& sublayer_input,
                                            torch::nn::LayerNorm& layer_norm) const {
  // LayerNorm's operator() is not const; the module itself is not changed.
  return config_.original_ln_after ? layer_norm->forward(output + sublayer_input) : output;
}

}  // namespace adaptertune
