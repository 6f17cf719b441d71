#include "fused_adamw.h"

#include <cmath>
#include <cstdint>

#include "parallel_loops.h"
#include "vector_clones.h"

namespace adaptertune::detail {
namespace {

// A vector clone; this file is compiled with -fno-math-errno, so that sqrt vectorises too.
ADAPTERTUNE_VECTOR_CLONES
void adamw_range(float* __restrict param, const float* __restrict grad, float* __restrict exp_avg,
                 float* __restrict exp_avg_sq, int64_t count, AdamWStepConstants c) {
  for (int64_t i = 0; i < count; ++i) {
    const float g = grad[i];
    const float m = exp_avg[i] * c.beta1 + c.one_minus_beta1 * g;
    const float v = exp_avg_sq[i] * c.beta2 + c.one_minus_beta2 * g * g;
    const float denom = std::sqrt(v) / c.bias_correction2_sqrt + c.eps;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    param[i] = param[i] * c.decay + c.step_size * m / denom;
  }
}

}  // namespace

bool fused_adamw_applies(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                         const at::Tensor& exp_avg_sq) {
  for (const at::Tensor* t : {&param, &grad, &exp_avg, &exp_avg_sq}) {
    if (!t->device().is_cpu() || t->scalar_type() != at::kFloat || !t->is_contiguous() ||
        t->layout() != at::kStrided) {
      return false;
    }
  }
  return grad.numel() == param.numel() && exp_avg.numel() == param.numel() &&
         exp_avg_sq.numel() == param.numel();
}

void fused_adamw_step(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg,
                      at::Tensor& exp_avg_sq, const AdamWStepConstants& constants) {
  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  at::parallel_for(0, param.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
    adamw_range(p + begin, g + begin, m + begin, v + begin, end - begin, constants);
  });
  // Written through raw pointers: tell autograd, as an in-place ATen operation would, so that a
  // graph still holding one of them refuses to use the new values.
  for (at::Tensor* t : {&param, &exp_avg, &exp_avg_sq}) t->unsafeGetTensorImpl()->bump_version();
}

}  // namespace adaptertune::detail
