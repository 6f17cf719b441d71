#pragma once
// The exact (erf) GELU with a backward pass that costs little on the CPU (private).

#include <utility>

#include <ATen/ATen.h>

namespace adaptertune {

/// at::gelu(input) (exact, erf), with a backward pass that costs little on the CPU.
///
/// Float32: at::gelu's bits forward. Where autograd records it for a CPU tensor, the backward
/// pass is this library's kernel instead of LibTorch's `gelu_backward`, which Debian's LibTorch
/// runs at about 1 ms per call over the main job's feed-forward activations ([2048, 1024], 2
/// threads) against the kernel's 0.5 ms. The kernel computes `grad * (Phi(x) + x phi(x))` in one
/// vectorised pass, with one exponential shared by both terms, as close to the exact derivative as
/// LibTorch's (3.0e-7 at worst over [-10, 10], from the series' float32 evaluation near 0), so
/// gradients agree with LibTorch's to float32 rounding.
///
/// Bfloat16 (contiguous, on the CPU; the feed-forward activations under CPU autocast): the
/// library's kernel forward, with or without gradients, from the same float32 evaluation rounded
/// once; where autograd records it, the kernel computes the derivative in the same pass and keeps
/// it (in bfloat16, in place of the input), so that backward is one multiplication. The values are
/// at::gelu's except below -4, where at::gelu loses its digits to cancellation and these keep them,
/// and for results below float32's normal range, which at::gelu flushes to 0; a gradient may
/// differ from gelu_backward's in its last bit or two (the derivative's rounding). Both ways over
/// [2048, 1024] on 2 threads: 0.84-0.96 ms against LibTorch's 1.29-1.35 (docs/benchmarks.md).
/// Second derivatives (backward with create_graph) through it throw Error.
///
/// Elsewhere (other devices and dtypes, or a strided bfloat16 tensor) at::gelu and its backward.
at::Tensor gelu_erf(const at::Tensor& input);

namespace detail {

/// The backward kernel: `grad` times GELU's derivative at `input`, both contiguous float32 CPU
/// tensors of one shape. Exposed for tests.
at::Tensor gelu_erf_backward(const at::Tensor& grad, const at::Tensor& input);

/// The bfloat16 forward kernel: GELU of a contiguous bfloat16 CPU tensor, no graph recorded.
/// Exposed for tests.
at::Tensor gelu_bfloat16(const at::Tensor& input);

/// GELU of a contiguous bfloat16 CPU tensor and its derivative there, both bfloat16, from one
/// pass; no graph recorded. Exposed for tests.
std::pair<at::Tensor, at::Tensor> gelu_and_derivative_bfloat16(const at::Tensor& input);

}  // namespace detail
}  // namespace adaptertune
