#pragma once
/// @file pooler.h
/// BERT's pooler: tanh(dense(h[CLS])).

#include <map>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/bert_config.h"

namespace adaptertune {

/// Takes the hidden state of the first token ([CLS]) and applies `tanh(dense(·))`. A task that
/// trains the pooler has its own copy under `tasks.<task>.dense`.
class BertPoolerImpl : public torch::nn::Module {
 public:
  explicit BertPoolerImpl(const BertConfig& config);
  /// `hidden` [batch, seq, hidden] → [batch, hidden]; each group of `routing` runs its task's
  /// own copy when it has one.
  torch::Tensor forward(const torch::Tensor& hidden,
                        const TaskRouting& routing = TaskRouting::base());

  /// Gives task `name` its own pooler, a copy of the base's current one.
  void add_copy(const std::string& name);
  /// Removes task `name`'s copy; no-op if it has none.
  void remove_task(const std::string& name);
  bool has_copy(const std::string& name) const { return dense_of_.count(name) > 0; }

  torch::nn::Linear dense{nullptr};
  torch::nn::ModuleDict tasks{nullptr};

 private:
  std::map<std::string, torch::nn::Linear> dense_of_;
};
TORCH_MODULE(BertPooler);

}  // namespace adaptertune
