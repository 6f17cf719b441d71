#pragma once
/// @file optimizer.h
/// AdamW with decoupled weight decay: one fused pass per tensor on the CPU, multi-tensor kernels
/// elsewhere.

#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace adaptertune {

/// Hyper-parameters of AdamW (defaults are PyTorch's, with BERT's usual weight decay).
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  /// Update each float32, contiguous CPU parameter in one pass over its memory (parameter,
  /// gradient and both moments), instead of the nine passes of the multi-tensor kernels, which
  /// serve every other tensor (CUDA, other dtypes). The two agree to float32 rounding.
  bool fused = true;
};

/// A set of parameters sharing one weight-decay coefficient.
struct OptimizerGroup {
  std::vector<torch::Tensor> params;
  /// Parameter names, parallel to `params` (used for checkpoints; may be empty).
  std::vector<std::string> names;
  double weight_decay = 0.0;
};

/// Splits the trainable parameters of `model` into two groups as BERT fine-tuning does: weight
/// decay `weight_decay` for weight matrices, none for biases and LayerNorm parameters.
std::vector<OptimizerGroup> weight_decay_groups(const torch::nn::Module& model,
                                                double weight_decay);

/// AdamW (Loshchilov & Hutter 2019) with the update of `torch.optim.AdamW` (no amsgrad):
/// `p -= lr·wd·p; m = β1·m + (1-β1)·g; v = β2·v + (1-β2)·g²;
///  p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)`.
/// Each step runs a fixed number of multi-tensor (`_foreach_*`) kernels per group instead of about
/// ten kernels per tensor, which matters on a GPU where adapter training updates hundreds of small
/// tensors. Parameters without a gradient are skipped (their step count does not advance).
class AdamW {
 public:
  AdamW(std::vector<OptimizerGroup> groups, AdamWOptions options);

  void step();
  /// Drops the gradients (sets them undefined), so that the next backward allocates fresh ones.
  void zero_grad();

  double lr() const { return options_.lr; }
  /// Sets the learning rate for the next step (what a scheduler calls).
  void set_lr(double lr) { options_.lr = lr; }
  const AdamWOptions& options() const { return options_; }

  /// Per-parameter state, for checkpoints: first and second moments and step counts, in group
  /// order then parameter order.
  struct State {
    std::vector<torch::Tensor> exp_avg;
    std::vector<torch::Tensor> exp_avg_sq;
    std::vector<int64_t> steps;
  };
  const std::vector<OptimizerGroup>& groups() const { return groups_; }
  const std::vector<State>& state() const { return state_; }
  /// Replaces the state; shapes must match the parameters (throws Error otherwise).
  void load_state(std::vector<State> state);

 private:
  std::vector<OptimizerGroup> groups_;
  std::vector<State> state_;
  AdamWOptions options_;
};

}  // namespace adaptertune
