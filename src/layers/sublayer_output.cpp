#include "adaptertune/layers/sublayer_output.h"

#include <tuple>

#include "adaptertune/error.h"
#include "dropout.h"
#include "linear.h"
#include "task_copies.h"

namespace adaptertune {

SublayerOutputImpl::SublayerOutputImpl(const SublayerOutputOptions& options) : options_(options) {
  dense = register_module("dense", torch::nn::Linear(options.in_features(), options.hidden_size()));
  LayerNorm = register_module(
      "LayerNorm",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({options.hidden_size()}).eps(options.layer_norm_eps())));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
  adapters = register_module("adapters", torch::nn::ModuleDict());
  adapter_fusion_layer = register_module("adapter_fusion_layer", torch::nn::ModuleDict());
  tasks = register_module("tasks", torch::nn::ModuleDict());
}

torch::Tensor SublayerOutputImpl::forward(const torch::Tensor& hidden, const torch::Tensor& input,
                                          const TaskRouting& routing) {
  if (!owns_any(routing)) {
    // Every row ends as the base's sublayer does (and branches not yet replicated share it).
    // Without dropout the residual addition runs inside the product where the library can.
    if (!drops(dropout)) {
      return LayerNorm(linear_add(*dense, hidden, 1.0, {input}));
    }
    return LayerNorm(hashed_dropout(dropout, linear(dense, hidden)) + input);
  }
  torch::Tensor projected = hashed_dropout(dropout, linear(dense, hidden));
  return routing.map_groups(projected, input,
                            [this](const TaskRouting::Group& group, const torch::Tensor& p,
                                   const torch::Tensor& x) { return finish(group, p, x); });
}

bool SublayerOutputImpl::owns_any(const TaskRouting& routing) const {
  for (const auto& group : routing.groups()) {
    if (group.task && layer_norm_of_.count(*group.task)) return true;
    for (const auto& step : group.stack) {
      if (adapter_of_.count(step) || fusion_of_.count(step)) return true;
    }
  }
  return false;
}

torch::Tensor SublayerOutputImpl::finish(const TaskRouting::Group& group,
                                         const torch::Tensor& projected,
                                         const torch::Tensor& input) const {
  // A copy of the handle: Module::operator() is non-const, the module itself is not changed.
  torch::nn::LayerNorm norm = detail::own_or_base(layer_norm_of_, group.task, LayerNorm);
  // The group's adapters and fusions that have one at this site, applied one on another's
  // output (Stack); the last one's placement decides what follows. An adapter's half-step waits
  // until the next one is known: the last adapter runs whole (forward()), which fuses its
  // additions into its product where it can.
  BottleneckAdapter last{nullptr};
  BottleneckAdapter pending{nullptr};
  torch::Tensor output = projected;
  for (const auto& name : group.stack) {
    if (auto found = adapter_of_.find(name); found != adapter_of_.end()) {
      if (pending) output = pending->residual_output(output, input, norm);
      pending = found->second;
    } else if (auto fusion = fusion_of_.find(name); fusion != fusion_of_.end()) {
      if (pending) output = pending->residual_output(output, input, norm);
      pending = nullptr;
      std::tie(output, last) = fuse(fusion->second, output, input, norm);
    }
  }
  if (pending) return pending->forward(output, input, norm);
  if (!last) return norm(projected + input);
  return last->finish(output, input, norm);
}

std::pair<torch::Tensor, BottleneckAdapter> SublayerOutputImpl::fuse(
    const AdapterFusion& fusion, const torch::Tensor& hidden, const torch::Tensor& input,
    torch::nn::LayerNorm& norm) const {
  // As AdapterHub's compose_fuse: the last fused adapter prepares the input (its pre_forward),
  // every fused adapter's up-projection is a value, and its placement ends the sublayer.
  // Copies of the handles: forward() is non-const, the modules themselves are not changed.
  AdapterFusion layer = fusion;
  const std::vector<std::string>& names = layer->adapters();
  BottleneckAdapter last = adapter_of_.at(names.back());
  const BottleneckAdapterImpl::Inputs in = last->inputs(hidden, input, norm);
  std::vector<torch::Tensor> ups;
  ups.reserve(names.size());
  for (const auto& name : names) {
    BottleneckAdapter adapter = adapter_of_.at(name);
    ups.push_back(adapter->up(in.hidden));
  }
  const torch::Tensor& query = layer->config().query_before_ln ? hidden : in.hidden;
  return {layer->forward(query, torch::stack(ups, 2), in.residual), last};
}

void SublayerOutputImpl::add_fusion(const std::string& name,
                                    const std::vector<std::string>& adapter_names,
                                    const FusionConfig& config, double attention_dropout) {
  if (adapter_fusion_layer->contains(name)) throw Error("fusion \"" + name + "\" already exists");
  for (const auto& adapter : adapter_names) {
    if (!adapter_of_.count(adapter)) {
      throw Error("fusion \"" + name + "\": adapter \"" + adapter + "\" has no adapter here");
    }
  }
  AdapterFusion fusion(options_.hidden_size(), adapter_names, config, attention_dropout);
  auto reference = dense->weight;
  fusion->to(reference.device(), reference.scalar_type());
  adapter_fusion_layer->update({{name, fusion.ptr()}});
  fusion_of_.emplace(name, fusion);
}

AdapterFusion SublayerOutputImpl::fusion(const std::string& name) const {
  auto found = fusion_of_.find(name);
  return found == fusion_of_.end() ? AdapterFusion{nullptr} : found->second;
}

void SublayerOutputImpl::add_adapter(const std::string& name, const AdapterConfig& config) {
  if (adapters->contains(name)) throw Error("adapter \"" + name + "\" already exists");
  BottleneckAdapter adapter(options_.hidden_size(), config);
  // New parameters follow the model's device and dtype.
  auto reference = dense->weight;
  adapter->to(reference.device(), reference.scalar_type());
  adapters->update({{name, adapter.ptr()}});
  adapter_of_.emplace(name, adapter);
}

void SublayerOutputImpl::add_layer_norm_copy(const std::string& name) {
  detail::add_task_copy(tasks, layer_norm_of_, name, "LayerNorm", LayerNorm);
}

void SublayerOutputImpl::remove_task(const std::string& name) {
  detail::remove_task_entry(adapters, adapter_of_, name);
  detail::remove_task_entry(adapter_fusion_layer, fusion_of_, name);
  detail::remove_task_entry(tasks, layer_norm_of_, name);
}

bool SublayerOutputImpl::has_adapter(const std::string& name) const {
  return adapter_of_.count(name) > 0;
}

bool SublayerOutputImpl::has_layer_norm_copy(const std::string& name) const {
  return layer_norm_of_.count(name) > 0;
}

}  // namespace adaptertune
