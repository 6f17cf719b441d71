#pragma once
// The exact (erf) GELU with a backward pass that costs little on the CPU (private).

#include <ATen/ATen.h>

namespace adaptertune {

/// at::gelu(input) (exact, erf), with the same bits forward. Where autograd records it for a
/// float32 CPU tensor, the backward pass is this library's kernel instead of LibTorch's
/// `gelu_backward`, which Debian's LibTorch runs at about 1 ms per call over the main job's
/// feed-forward activations ([2048, 1024], 2 threads) against the kernel's 0.5 ms. The kernel
/// computes `grad * (Phi(x) + x phi(x))` in one vectorised pass, with one exponential shared by
/// both terms, as close to the exact derivative as LibTorch's (3.0e-7 at worst over [-10, 10],
/// from the series' float32 evaluation near 0), so gradients agree with LibTorch's to float32
/// rounding. Elsewhere it is at::gelu and its backward: bfloat16 too, where LibTorch's backward
/// was the faster (0.8 against 1.0 ms for the same kernel widened to float32).
at::Tensor gelu_erf(const at::Tensor& input);

namespace detail {

/// The backward kernel: `grad` times GELU's derivative at `input`, both contiguous float32 CPU
/// tensors of one shape. Exposed for tests.
at::Tensor gelu_erf_backward(const at::Tensor& grad, const at::Tensor& input);

}  // namespace detail
}  // namespace adaptertune
