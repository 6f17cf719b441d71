#pragma once
// SiLU (swish) with a bfloat16 kernel on the CPU (private).

#include <utility>

#include <ATen/ATen.h>

namespace adaptertune {

/// at::silu(input), `x sigmoid(x)`: the adapters' default activation (AdapterHub's "swish").
///
/// Bfloat16 (contiguous, on the CPU; an adapter's bottleneck under CPU autocast): the library's
/// kernel, with or without gradients, from a float32 evaluation rounded once; where autograd
/// records it, the kernel computes the derivative `s (1 + x (1 - s))`, s = sigmoid(x), in the same
/// pass and keeps it (in bfloat16, in place of the input), so that backward is one multiplication.
/// The adapters' [tokens, bottleneck] activations are small (32,768 values at the main job's
/// shape), where LibTorch's bfloat16 silu and silu_backward took 58 and 129 us on 2 threads.
/// Values are the nearest bfloat16 to the exact ones, and gradients within two bfloat16 steps of
/// the exact ones; LibTorch 1.13's bfloat16 silu and silu_backward round on the way (5.5625 at
/// x = 5.5625, where the exact 5.5412 rounds to 5.53125), so 3 % of values differ from theirs,
/// each nearer (tests). Second derivatives through it throw Error.
///
/// Elsewhere (other devices and dtypes, or a strided tensor) at::silu and its backward.
at::Tensor swish(const at::Tensor& input);

namespace detail {

/// The bfloat16 forward kernel: SiLU of a contiguous bfloat16 CPU tensor, no graph recorded.
/// Exposed for tests.
at::Tensor silu_bfloat16(const at::Tensor& input);

/// SiLU of a contiguous bfloat16 CPU tensor and its derivative there, both bfloat16, from one
/// pass; no graph recorded. Exposed for tests.
std::pair<at::Tensor, at::Tensor> silu_and_derivative_bfloat16(const at::Tensor& input);

}  // namespace detail
}  // namespace adaptertune
