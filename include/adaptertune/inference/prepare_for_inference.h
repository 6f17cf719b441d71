#pragma once
/// @file prepare_for_inference.h
/// Setting a model up once for a life of predictions, the way a Predictor runs it.

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

}  // namespace adaptertune
