#pragma once
/// @file adapter_fusion.h
/// AdapterFusion's attention over several adapters' outputs (AdapterHub's `BertFusion`).

#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/fusion_config.h"

namespace adaptertune {

/// One fusion layer for a model of width `hidden_size`, over the adapters named `adapters` (in
/// this order). Parameter names follow AdapterHub: `query.{weight,bias}`, `key.{weight,bias}`,
/// `value.weight` as the config asks, and `dense.{weight,bias}` when it asks for none of the
/// three (AdapterHub creates that layer and never uses it; it is kept so that files match).
class AdapterFusionImpl : public torch::nn::Module {
 public:
  /// `attention_dropout` is the dropout on the attention scores when the config sets none.
  AdapterFusionImpl(int64_t hidden_size, std::vector<std::string> adapters,
                    const FusionConfig& config, double attention_dropout);

  /// `query` [batch, seq, d]; `adapter_outputs` [batch, seq, adapters, d], the adapters'
  /// up-projections; `residual` [batch, seq, d]. Returns [batch, seq, d] (FusionConfig's `o`).
  torch::Tensor forward(const torch::Tensor& query, const torch::Tensor& adapter_outputs,
                        const torch::Tensor& residual);

  /// `0.01 · ||I − W_value||²` (AdapterHub's fusion regularisation); an undefined tensor when
  /// the layer has no value projection.
  torch::Tensor regularization_loss() const;

  /// Re-draws the weights as the config says.
  void reset_parameters();

  const FusionConfig& config() const { return config_; }
  /// The fused adapters, in order.
  const std::vector<std::string>& adapters() const { return adapters_; }

  torch::nn::Linear query{nullptr};
  torch::nn::Linear key{nullptr};
  torch::nn::Linear value{nullptr};
  torch::nn::Linear dense{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  int64_t hidden_size_;
  std::vector<std::string> adapters_;
  FusionConfig config_;
};
TORCH_MODULE(AdapterFusion);

/// AdapterHub's name of the fusion of `adapters`: their names joined by ','.
std::string fusion_name(const std::vector<std::string>& adapters);
/// The adapters a fusion name joins ("a,b" → {"a", "b"}); empty for a name without ',' (an
/// adapter's). Empty parts are kept, for callers to refuse.
std::vector<std::string> fused_adapter_names(const std::string& name);

}  // namespace adaptertune
