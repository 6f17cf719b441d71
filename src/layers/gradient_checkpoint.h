#pragma once
// Gradient checkpointing of one layer's forward pass (BertEncoderImpl::set_gradient_checkpointing).

#include <functional>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace adaptertune::detail {

// `run(input)`, where `run` is `module`'s forward pass, keeping for backward only `input` rather
// than the activations `run` makes: backward runs it again, with grad mode on, the random
// generators (CPU, and the input's CUDA device) put back where they stood before the first run,
// so that dropout draws the same masks, the first run's DropoutRows (dropout.h) and autocast, and
// then backpropagates through that second run. The gradients of `input` and of `module`'s
// parameters that require grad are those of an ordinary run. When neither needs a gradient (or
// grad mode is off), and inside another checkpoint's second run, it is the plain `run(input)`:
// checkpoints nest without running the inner span a third time. `run` must not change state that
// a second run would see.
at::Tensor checkpointed(torch::nn::Module& module, const at::Tensor& input,
                        std::function<at::Tensor(const at::Tensor&)> run);

// The same for a `run` that uses no parameters that require grad, only `input` (and tensors that
// need no gradient): a span inside a layer, such as the attention's probabilities.
at::Tensor checkpointed(const at::Tensor& input, std::function<at::Tensor(const at::Tensor&)> run);

}  // namespace adaptertune::detail
