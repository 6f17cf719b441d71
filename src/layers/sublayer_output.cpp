#include "adaptertune/layers/sublayer_output.h"

#include "adaptertune/error.h"

namespace adaptertune {

SublayerOutputImpl::SublayerOutputImpl(const SublayerOutputOptions& options) : options_(options) {
  dense = register_module("dense", torch::nn::Linear(options.in_features(), options.hidden_size()));
  LayerNorm = register_module(
      "LayerNorm",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({options.hidden_size()}).eps(options.layer_norm_eps())));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
  adapters = register_module("adapters", torch::nn::ModuleDict());
}

torch::Tensor SublayerOutputImpl::forward(const torch::Tensor& hidden, const torch::Tensor& input) {
  torch::Tensor projected = dropout(dense(hidden));
  if (active_) return active_->forward(projected, input, LayerNorm);
  return LayerNorm(projected + input);
}

void SublayerOutputImpl::add_adapter(const std::string& name, const AdapterConfig& config) {
  if (adapters->contains(name)) throw Error("adapter \"" + name + "\" already exists");
  BottleneckAdapter adapter(options_.hidden_size(), config);
  // New parameters follow the model's device and dtype.
  auto reference = dense->weight;
  adapter->to(reference.device(), reference.scalar_type());
  adapters->update({{name, adapter.ptr()}});
}

void SublayerOutputImpl::remove_adapter(const std::string& name) {
  if (!adapters->contains(name)) throw Error("no adapter named \"" + name + "\"");
  if (active_name_ == name) set_active_adapter(std::nullopt);
  adapters->pop(name);
  // ModuleDict::pop keeps the child registered (as Python does); its parameters must go too.
  adapters->unregister_module(name);
}

void SublayerOutputImpl::set_active_adapter(const std::optional<std::string>& name) {
  if (!name) {
    active_ = nullptr;
    active_name_.reset();
    return;
  }
  if (!adapters->contains(*name)) throw Error("no adapter named \"" + *name + "\"");
  active_ = BottleneckAdapter(std::dynamic_pointer_cast<BottleneckAdapterImpl>(adapters[*name]));
  active_name_ = name;
}

bool SublayerOutputImpl::has_adapter(const std::string& name) const {
  return adapters->contains(name);
}

}  // namespace adaptertune
