#pragma once
// Visiting a module and everything under it.

#include <torch/nn/module.h>

namespace adaptertune {

// Calls `visit(module)` for `root` and then for each of its descendants (depth first, each once).
// Module::modules(/*include_self=*/true) does the same only for a module that a shared_ptr holds
// and throws LibTorch's c10::Error otherwise (a model built on the stack); this takes any module.
template <typename Visit>
void for_each_module(torch::nn::Module& root, Visit&& visit) {
  visit(root);
  for (const auto& child : root.modules(/*include_self=*/false)) visit(*child);
}

}  // namespace adaptertune
