#include "adaptertune/inference/prepare_for_inference.h"

#include <torch/nn/module.h>

#include "adaptertune/layers/attention.h"

namespace adaptertune {

void prepare_for_inference(torch::nn::Module& model, Precision precision) {
  for (auto& parameter : model.parameters()) parameter.set_requires_grad(false);
  // Converting after packing would give the weights new storage and undo the packing.
  store_frozen_linear_weights(model, precision);
  pack_frozen_projections(model);
}

}  // namespace adaptertune
