#pragma once
/// @file prepare_for_inference.h
/// Setting a model up once for a life of predictions, the way a Predictor runs it.

#include <memory>

#include <c10/core/Device.h>

#include "adaptertune/layers/linear.h"
#include "adaptertune/precision.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace adaptertune {

/// Freezes every parameter of `model`, stores its Linear weights in `precision`'s dtype
/// (store_frozen_linear_weights(): bf16/fp16 only, for a model that then runs under
/// AutocastGuard with that precision) and packs every SelfAttention's query, key and value into
/// one block (SelfAttentionImpl::pack_projections()), so that a forward pass neither casts nor
/// joins weights. Predictions do not change, bit for bit. Safe to call again after adding
/// modules (a task's adapters): what is already done is left as it is. Training the model
/// afterwards needs its parameters unfrozen and, under bf16/fp16, its weights back in float32.
void prepare_for_inference(torch::nn::Module& model, Precision precision);

/// The whole set-up a Predictor gives its model, for code that runs a model itself (`adaptertune
/// eval`, `predict` on files): `model` moved to `device` where it is elsewhere
/// (move_to_device()), prepare_for_inference(), and, where `prepack` is true, a cover that keeps
/// its weights of `dtypes` prepacked for oneDNN's kernels while it lives
/// (FrozenLinearWeightsPrepacked; null where `prepack` is false). The same outputs as the model
/// as it was, bit for bit, with the default `dtypes`, so that `eval` reproduces a training run's
/// dev scores; a Predictor asks for float32 weights too (PrepackedDtypes::kBFloat16AndFloat32):
/// float32 outputs then move within float32 rounding, for short requests several times faster. Safe
/// to call again after modules were added or removed: hold the new cover, then let the old one go,
/// so that the weights both cover keep their copies.
[[nodiscard]] std::unique_ptr<FrozenLinearWeightsPrepacked> set_up_for_inference(
    torch::nn::Module& model, c10::Device device, Precision precision, bool prepack = true,
    PrepackedDtypes dtypes = PrepackedDtypes::kBFloat16);

}  // namespace adaptertune
