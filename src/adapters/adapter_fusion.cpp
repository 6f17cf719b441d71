#include "adaptertune/adapters/adapter_fusion.h"

#include <torch/torch.h>

#include "adaptertune/error.h"
#include "dropout.h"

namespace adaptertune {

std::string fusion_name(const std::vector<std::string>& adapters) {
  std::string name;
  for (const auto& adapter : adapters) name += (name.empty() ? "" : ",") + adapter;
  return name;
}

std::vector<std::string> fused_adapter_names(const std::string& name) {
  std::vector<std::string> parts;
  if (name.find(',') == std::string::npos) return parts;
  size_t start = 0;
  while (true) {
    const size_t comma = name.find(',', start);
    parts.push_back(name.substr(start, comma - start));
    if (comma == std::string::npos) return parts;
    start = comma + 1;
  }
}

AdapterFusionImpl::AdapterFusionImpl(int64_t hidden_size, std::vector<std::string> adapters,
                                     const FusionConfig& config, double attention_dropout)
    : hidden_size_(hidden_size), adapters_(std::move(adapters)), config_(config) {
  config_.validate();
  if (adapters_.size() < 2) {
    throw Error("AdapterFusion: needs at least two adapters, got \"" + fusion_name(adapters_) +
                "\"");
  }
  if (!config_.query && !config_.key && !config_.value) {
    dense = register_module("dense", torch::nn::Linear(hidden_size, 1));
  }
  if (config_.query) query = register_module("query", torch::nn::Linear(hidden_size, hidden_size));
  if (config_.key) key = register_module("key", torch::nn::Linear(hidden_size, hidden_size));
  if (config_.value) {
    value = register_module(
        "value", torch::nn::Linear(torch::nn::LinearOptions(hidden_size, hidden_size).bias(false)));
  }
  dropout = register_module("dropout",
                            torch::nn::Dropout(config_.dropout_prob.value_or(attention_dropout)));
  reset_parameters();
}

void AdapterFusionImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  // BERT's init, as AdapterHub applies to every projection.
  for (torch::nn::Linear* linear : {&query, &key, &value, &dense}) {
    if (!*linear) continue;
    (*linear)->weight.normal_(0.0, 0.02);
    if ((*linear)->bias.defined()) (*linear)->bias.zero_();
  }
  if (value && config_.value_initialized) {
    value->weight.fill_(1e-6);
    value->weight.fill_diagonal_(1.0);
  }
}

torch::Tensor AdapterFusionImpl::forward(const torch::Tensor& query_input,
                                         const torch::Tensor& adapter_outputs,
                                         const torch::Tensor& residual) {
  if (adapter_outputs.dim() != 4 ||
      adapter_outputs.size(2) != static_cast<int64_t>(adapters_.size())) {
    throw Error("AdapterFusion " + fusion_name(adapters_) +
                ": adapter outputs must be [batch, seq, " + std::to_string(adapters_.size()) +
                ", " + std::to_string(hidden_size_) + "], got " +
                c10::str(adapter_outputs.sizes()));
  }
  torch::Tensor values = adapter_outputs;
  if (config_.residual_before) values = values + residual.unsqueeze(2);
  torch::Tensor q = config_.query ? query(query_input) : query_input;
  torch::Tensor k = config_.key ? key(values) : values;
  torch::Tensor v = config_.value && config_.value_before_softmax ? value(values) : values;
  // [b, s, 1, d] x [b, s, d, n] -> scores over the adapters [b, s, n].
  torch::Tensor scores = torch::matmul(q.unsqueeze(2), k.transpose(-2, -1)).squeeze(2);
  torch::Tensor probs = torch::softmax(hashed_dropout(dropout, scores), -1);
  torch::Tensor context = torch::matmul(probs.unsqueeze(2), v).squeeze(2);
  if (config_.value && !config_.value_before_softmax) context = value(context);
  if (!config_.residual_before) context = context + residual;
  return context;
}

torch::Tensor AdapterFusionImpl::regularization_loss() const {
  if (!value) return {};
  const torch::Tensor& weight = value->weight;
  torch::Tensor identity = torch::eye(hidden_size_, weight.options());
  return 0.01 * (identity - weight).pow(2).sum();
}

}  // namespace adaptertune
