#include "adaptertune/inference/prepare_for_inference.h"

#include <torch/nn/module.h>

#include "adaptertune/device.h"
#include "adaptertune/layers/attention.h"
#include "adaptertune/layers/linear.h"

namespace adaptertune {

void prepare_for_inference(torch::nn::Module& model, Precision precision) {
  for (auto& parameter : model.parameters()) parameter.set_requires_grad(false);
  // Converting after packing would give the weights new storage and undo the packing.
  store_frozen_linear_weights(model, precision);
  pack_frozen_projections(model);
}

std::unique_ptr<FrozenLinearWeightsPrepacked> set_up_for_inference(torch::nn::Module& model,
                                                                   c10::Device device,
                                                                   Precision precision,
                                                                   bool prepack,
                                                                   PrepackedDtypes dtypes) {
  move_to_device(model, device);
  prepare_for_inference(model, precision);
  return prepack ? std::make_unique<FrozenLinearWeightsPrepacked>(model, dtypes) : nullptr;
}

}  // namespace adaptertune
