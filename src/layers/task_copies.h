#pragma once
// How a layer gives a task its own copy of one of its modules: the copy is registered as
// `tasks.<task>.<child name>`, so that its parameter names are the base's with `tasks.<task>.`
// inserted (parameter_names.h reads them back).

#include <map>
#include <memory>
#include <optional>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/moduledict.h>

#include "adaptertune/error.h"

namespace adaptertune::detail {

/// Registers `module` (a new module, not a copy) as `task`'s child `child_name` in `tasks`.
template <typename Holder>
void add_task_module(torch::nn::ModuleDict& tasks, const std::string& task,
                     const std::string& child_name, const Holder& module) {
  if (tasks->contains(task)) throw Error("task \"" + task + "\" already has its module");
  auto holder = std::make_shared<torch::nn::Module>();
  holder->register_module(child_name, module.ptr());
  tasks->update({{task, holder}});
}

/// Adds to `tasks` a copy of `base` (same values, device, dtype, requires_grad) for `task` as
/// child `child_name`, records it in `copies` and returns it. Throws Error if `task` has one.
template <typename Holder>
Holder add_task_copy(torch::nn::ModuleDict& tasks, std::map<std::string, Holder>& copies,
                     const std::string& task, const std::string& child_name, const Holder& base) {
  Holder copy(std::dynamic_pointer_cast<typename Holder::Impl>(base->clone()));
  add_task_module(tasks, task, child_name, copy);
  copies.emplace(task, copy);
  return copy;
}

/// Removes `task`'s entry from a ModuleDict and its record (no-op when it has none).
template <typename Holder>
void remove_task_entry(torch::nn::ModuleDict& dict, std::map<std::string, Holder>& records,
                       const std::string& task) {
  if (!dict->contains(task)) return;
  dict->pop(task);
  // ModuleDict::pop keeps the child registered (as Python does); its parameters must go too.
  dict->unregister_module(task);
  records.erase(task);
}

/// The task's own module when it has one, else `base`.
template <typename Holder>
const Holder& own_or_base(const std::map<std::string, Holder>& copies,
                          const std::optional<std::string>& task, const Holder& base) {
  if (task) {
    auto it = copies.find(*task);
    if (it != copies.end()) return it->second;
  }
  return base;
}

}  // namespace adaptertune::detail
