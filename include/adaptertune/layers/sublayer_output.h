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

#include "adaptertune/adapters/adapter_fusion.h"
#include "adaptertune/adapters/bottleneck_adapter.h"
#include "adaptertune/adapters/task_routing.h"

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
/// Bottleneck adapters live here under `adapters.<task>` (AdapterHub's names), fusion layers
/// under `adapter_fusion_layer.<a,b,…>` (AdapterHub's too), and a task's own LayerNorm under
/// `tasks.<task>.LayerNorm`. A fusion is a step of a group's stack like an adapter: it fuses its
/// adapters' outputs at this site, and the last fused adapter's placement decides what follows.
/// Which task runs is the caller's TaskRouting: this module holds no "active" state, so that one
/// forward pass can serve several tasks.
class SublayerOutputImpl : public torch::nn::Module {
 public:
  explicit SublayerOutputImpl(const SublayerOutputOptions& options);

  /// `hidden` is the sublayer's result [batch, seq, in_features]; `input` its input
  /// [batch, seq, hidden_size]. Each group of `routing` gets its task's adapter (if the task
  /// has one here) and LayerNorm (its own copy, else the base's).
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& input,
                        const TaskRouting& routing = TaskRouting::base());

  /// Adds task `name`'s adapter (throws Error if it has one).
  void add_adapter(const std::string& name, const AdapterConfig& config);
  /// Adds the fusion layer `name` over `adapters` (each must have an adapter here; throws Error
  /// otherwise or if the fusion has a layer here). `attention_dropout` is the dropout on its
  /// attention scores unless the config sets one.
  void add_fusion(const std::string& name, const std::vector<std::string>& adapters,
                  const FusionConfig& config, double attention_dropout);
  /// The fusion layer `name`, or an empty holder when it has none here.
  AdapterFusion fusion(const std::string& name) const;
  /// Gives task `name` its own LayerNorm, a copy of the base's current one.
  void add_layer_norm_copy(const std::string& name);
  /// Removes everything task `name` has here (adapter, fusion layer, LayerNorm copy); no-op if
  /// none.
  void remove_task(const std::string& name);
  bool has_adapter(const std::string& name) const;
  bool has_layer_norm_copy(const std::string& name) const;

  torch::nn::Linear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};  // NOLINT: Hugging Face's name
  torch::nn::Dropout dropout{nullptr};
  torch::nn::ModuleDict adapters{nullptr};
  torch::nn::ModuleDict adapter_fusion_layer{nullptr};  // NOLINT: AdapterHub's name
  torch::nn::ModuleDict tasks{nullptr};

 private:
  torch::Tensor finish(const TaskRouting::Group& group, const torch::Tensor& projected,
                       const torch::Tensor& input) const;
  // Fusion `fusion` applied to `hidden` (the sublayer's output so far); returns its output
  // before the residual add and LayerNorm, and the adapter whose placement decides those.
  std::pair<torch::Tensor, BottleneckAdapter> fuse(const AdapterFusion& fusion,
                                                   const torch::Tensor& hidden,
                                                   const torch::Tensor& input,
                                                   torch::nn::LayerNorm& norm) const;
  // Whether any group has an adapter or a LayerNorm copy here.
  bool owns_any(const TaskRouting& routing) const;

  SublayerOutputOptions options_;
  // Typed views of `adapters` and `tasks`, read by forward().
  std::map<std::string, BottleneckAdapter> adapter_of_;
  std::map<std::string, AdapterFusion> fusion_of_;
  std::map<std::string, torch::nn::LayerNorm> layer_norm_of_;
};
TORCH_MODULE(SublayerOutput);

}  // namespace adaptertune
