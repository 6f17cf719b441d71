#include "adaptertune/layers/pooler.h"

#include <ATen/ATen.h>

#include "task_copies.h"

namespace adaptertune {

BertPoolerImpl::BertPoolerImpl(const BertConfig& config) {
  dense = register_module("dense", torch::nn::Linear(config.hidden_size, config.hidden_size));
  tasks = register_module("tasks", torch::nn::ModuleDict());
}

torch::Tensor BertPoolerImpl::forward(const torch::Tensor& hidden, const TaskRouting& routing) {
  return routing.map(hidden.select(1, 0),
                     [this](const std::optional<std::string>& task, const torch::Tensor& first) {
                       torch::nn::Linear projection = detail::own_or_base(dense_of_, task, dense);
                       return at::tanh(projection(first));
                     });
}

void BertPoolerImpl::add_copy(const std::string& name) {
  detail::add_task_copy(tasks, dense_of_, name, "dense", dense);
}

void BertPoolerImpl::remove_task(const std::string& name) {
  detail::remove_task_entry(tasks, dense_of_, name);
}

}  // namespace adaptertune
