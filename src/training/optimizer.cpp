#include "adaptertune/training/optimizer.h"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/record_function.h>

#include "adaptertune/error.h"
#include "fused_adamw.h"
#include "shape_check.h"

namespace adaptertune {

std::vector<OptimizerGroup> weight_decay_groups(const torch::nn::Module& model,
                                                double weight_decay) {
  OptimizerGroup decay, no_decay;
  decay.weight_decay = weight_decay;
  for (const auto& item : model.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    const std::string& name = item.key();
    const bool is_bias = name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    OptimizerGroup& group =
        (is_bias || name.find("LayerNorm.") != std::string::npos) ? no_decay : decay;
    group.params.push_back(item.value());
    group.names.push_back(name);
  }
  std::vector<OptimizerGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

AdamW::AdamW(std::vector<OptimizerGroup> groups, AdamWOptions options)
    : groups_(std::move(groups)), options_(options) {
  if (!(options_.lr >= 0)) throw Error("AdamW: lr must be >= 0");
  if (!(options_.beta1 >= 0 && options_.beta1 < 1) ||
      !(options_.beta2 >= 0 && options_.beta2 < 1)) {
    throw Error("AdamW: betas must lie in [0, 1)");
  }
  if (!(options_.eps > 0)) throw Error("AdamW: eps must be > 0");
  for (const auto& group : groups_) {
    if (!group.names.empty() && group.names.size() != group.params.size()) {
      throw Error("AdamW: a group has " + std::to_string(group.names.size()) + " names for " +
                  std::to_string(group.params.size()) + " parameters");
    }
    State state;
    for (const auto& p : group.params) {
      state.exp_avg.push_back(torch::zeros_like(p, at::MemoryFormat::Preserve));
      state.exp_avg_sq.push_back(torch::zeros_like(p, at::MemoryFormat::Preserve));
      state.steps.push_back(0);
    }
    state_.push_back(std::move(state));
  }
}

void AdamW::zero_grad() {
  for (auto& group : groups_) {
    for (auto& p : group.params) p.mutable_grad().reset();
  }
}

void AdamW::step() {
  RECORD_FUNCTION("adaptertune::AdamW.step", std::vector<c10::IValue>());
  torch::NoGradGuard no_grad;
  const double lr = options_.lr, beta1 = options_.beta1, beta2 = options_.beta2;
  for (size_t g = 0; g < groups_.size(); ++g) {
    OptimizerGroup& group = groups_[g];
    State& state = state_[g];
    std::vector<at::Tensor> params, grads, exp_avg, exp_avg_sq;
    std::vector<at::Scalar> step_sizes, bias_correction2_sqrt;
    for (size_t i = 0; i < group.params.size(); ++i) {
      const at::Tensor& grad = group.params[i].grad();
      if (!grad.defined()) continue;
      if (grad.is_sparse()) throw Error("AdamW: sparse gradients are not supported");
      const int64_t t = ++state.steps[i];
      const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(t));
      const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(t));
      if (options_.fused && detail::fused_adamw_applies(group.params[i], grad, state.exp_avg[i],
                                                        state.exp_avg_sq[i])) {
        detail::AdamWStepConstants constants;
        constants.decay = static_cast<float>(1.0 - lr * group.weight_decay);
        constants.beta1 = static_cast<float>(beta1);
        constants.beta2 = static_cast<float>(beta2);
        constants.one_minus_beta1 = static_cast<float>(1.0 - beta1);
        constants.one_minus_beta2 = static_cast<float>(1.0 - beta2);
        constants.bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
        constants.eps = static_cast<float>(options_.eps);
        constants.step_size = static_cast<float>(-lr / bias_correction1);
        detail::fused_adamw_step(group.params[i], grad, state.exp_avg[i], state.exp_avg_sq[i],
                                 constants);
        continue;
      }
      params.push_back(group.params[i]);
      grads.push_back(grad);
      exp_avg.push_back(state.exp_avg[i]);
      exp_avg_sq.push_back(state.exp_avg_sq[i]);
      step_sizes.emplace_back(-lr / bias_correction1);
      bias_correction2_sqrt.emplace_back(std::sqrt(bias_correction2));
    }
    if (params.empty()) continue;
    if (group.weight_decay != 0.0) at::_foreach_mul_(params, 1.0 - lr * group.weight_decay);
    at::_foreach_mul_(exp_avg, beta1);
    at::_foreach_add_(exp_avg, grads, 1.0 - beta1);
    at::_foreach_mul_(exp_avg_sq, beta2);
    at::_foreach_addcmul_(exp_avg_sq, grads, grads, 1.0 - beta2);
    std::vector<at::Tensor> denom = at::_foreach_sqrt(exp_avg_sq);
    at::_foreach_div_(denom, bias_correction2_sqrt);
    at::_foreach_add_(denom, options_.eps);
    at::_foreach_addcdiv_(params, exp_avg, denom, step_sizes);
  }
}

void AdamW::load_state(std::vector<State> state) {
  if (state.size() != groups_.size()) {
    throw Error("AdamW state: " + std::to_string(state.size()) + " groups, optimizer has " +
                std::to_string(groups_.size()));
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    const auto& params = groups_[g].params;
    const State& s = state[g];
    if (s.exp_avg.size() != params.size() || s.exp_avg_sq.size() != params.size() ||
        s.steps.size() != params.size()) {
      throw Error("AdamW state: group " + std::to_string(g) + " has the wrong number of tensors");
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string name =
          groups_[g].names.empty() ? "#" + std::to_string(i) : groups_[g].names[i];
      for (const auto* t : {&s.exp_avg[i], &s.exp_avg_sq[i]}) {
        if (!t->sizes().equals(params[i].sizes())) {
          throw Error("AdamW state for " + name + ": shape " + detail::shape_string(*t) +
                      ", parameter has " + detail::shape_string(params[i]));
        }
      }
    }
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const auto& p = groups_[g].params[i];
      state[g].exp_avg[i] = state[g].exp_avg[i].to(p.device(), p.scalar_type());
      state[g].exp_avg_sq[i] = state[g].exp_avg_sq[i].to(p.device(), p.scalar_type());
    }
  }
  state_ = std::move(state);
}

}  // namespace adaptertune
