#include "adaptertune/inference/prepare_for_inference.h"

#include <torch/nn/module.h>

#include "adaptertune/layers/attention.h"
#include "heap_pages.h"
#include "module_walk.h"

namespace adaptertune {

void prepare_for_inference(torch::nn::Module& model, Precision precision) {
  for (auto& parameter : model.parameters()) parameter.set_requires_grad(false);
  // Converting after packing would give the weights new storage and undo the packing.
  store_frozen_linear_weights(model, precision);
  auto pack = [](torch::nn::Module& module) {
    if (auto* attention = module.as<SelfAttention>()) {
      const void* before = attention->query->weight.data_ptr();
      attention->pack_projections();
      // The three weights a layer's block replaces are freed in the middle of the heap, where
      // the next layer's block does not fit: without this a float32 bert-base kept 85 MB of them
      // resident (peak 599 -> 672 MiB, docs/benchmarks.md), and a trim after the last layer
      // would come after that peak. A layer already packed (a later call, after a task's pack
      // was added) frees nothing.
      if (attention->query->weight.data_ptr() != before) release_free_heap_pages();
    }
  };
  for_each_module(model, pack);
}

}  // namespace adaptertune
