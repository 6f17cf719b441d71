#pragma once
// AdamW's update of one float32 CPU tensor in a single pass (private to the library).

#include <ATen/ATen.h>

namespace adaptertune::detail {

/// The constants of one AdamW step for one tensor, as float32.
struct AdamWStepConstants {
  float decay;  // 1 - lr * weight_decay
  float beta1, beta2;
  float one_minus_beta1, one_minus_beta2;  // in double, then rounded: 1 - 0.999f is not 0.001f
  float bias_correction2_sqrt;             // sqrt(1 - beta2^t)
  float eps;
  float step_size;  // -lr / (1 - beta1^t)
};

/// Whether fused_adamw_step() takes these tensors: float32, contiguous, on the CPU, dense.
bool fused_adamw_applies(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                         const at::Tensor& exp_avg_sq);

/// `param`, `exp_avg` and `exp_avg_sq` updated in place by one AdamW step with `grad`: the
/// multi-tensor path's nine passes over the parameters' memory in one, elementwise in the same
/// order of operations (results agree to float32 rounding, not bit for bit: LibTorch's kernels
/// fuse some multiply-adds).
void fused_adamw_step(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg,
                      at::Tensor& exp_avg_sq, const AdamWStepConstants& constants);

}  // namespace adaptertune::detail
