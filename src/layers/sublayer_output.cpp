#include "adaptertune/layers/sublayer_output.h"

#include "adaptertune/error.h"
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
  tasks = register_module("tasks", torch::nn::ModuleDict());
}

torch::Tensor SublayerOutputImpl::forward(const torch::Tensor& hidden, const torch::Tensor& input,
                                          const TaskRouting& routing) {
  torch::Tensor projected = dropout(dense(hidden));
  if (routing.not_yet_replicated(projected) && !owns_any(routing)) {
    return finish(TaskRouting::base().groups().front(), projected, input);  // shared by branches
  }
  return routing.map_groups(projected, input,
                            [this](const TaskRouting::Group& group, const torch::Tensor& p,
                                   const torch::Tensor& x) { return finish(group, p, x); });
}

bool SublayerOutputImpl::owns_any(const TaskRouting& routing) const {
  for (const auto& group : routing.groups()) {
    if (group.task && layer_norm_of_.count(*group.task)) return true;
    for (const auto& adapter : group.stack) {
      if (adapter_of_.count(adapter)) return true;
    }
  }
  return false;
}

torch::Tensor SublayerOutputImpl::finish(const TaskRouting::Group& group,
                                         const torch::Tensor& projected,
                                         const torch::Tensor& input) const {
  // A copy of the handle: Module::operator() is non-const, the module itself is not changed.
  torch::nn::LayerNorm norm = detail::own_or_base(layer_norm_of_, group.task, LayerNorm);
  // The group's adapters that have one at this site, applied one on another's output (Stack);
  // the last one's placement decides what follows.
  BottleneckAdapter last{nullptr};
  torch::Tensor output = projected;
  for (const auto& name : group.stack) {
    auto found = adapter_of_.find(name);
    if (found == adapter_of_.end()) continue;
    BottleneckAdapter adapter = found->second;
    output = adapter->residual_output(output, input, norm);
    last = adapter;
  }
  if (!last) return norm(projected + input);
  return last->finish(output, input, norm);
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
  detail::remove_task_entry(tasks, layer_norm_of_, name);
}

bool SublayerOutputImpl::has_adapter(const std::string& name) const {
  return adapter_of_.count(name) > 0;
}

bool SublayerOutputImpl::has_layer_norm_copy(const std::string& name) const {
  return layer_norm_of_.count(name) > 0;
}

}  // namespace adaptertune
