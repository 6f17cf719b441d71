#include "gradient_checkpoint.h"

#include <optional>
#include <utility>
#include <vector>

#include <ATen/core/ivalue.h>
#include <torch/autograd.h>

#include "adaptertune/precision.h"
#include "dropout.h"
#include "generator_state.h"

namespace adaptertune::detail {
namespace {

// The default generators a forward pass on `device` may draw from.
std::vector<GeneratorState> generator_states(c10::Device device) {
  std::vector<GeneratorState> states;
  states.emplace_back(at::globalContext().defaultGenerator(c10::Device(c10::kCPU)));
  if (device.is_cuda()) states.emplace_back(at::globalContext().defaultGenerator(device));
  return states;
}

// How many checkpoints this thread is running again in backward. A checkpoint met inside such a
// run is run plainly: the outer run's activations live only for its own backward, so a nested
// checkpoint would save nothing worth its third run (the encoder's layers with the attention's
// probabilities inside them).
thread_local int recompute_depth = 0;

struct RecomputeScope {
  RecomputeScope() { ++recompute_depth; }
  ~RecomputeScope() { --recompute_depth; }
  RecomputeScope(const RecomputeScope&) = delete;
  RecomputeScope& operator=(const RecomputeScope&) = delete;
};

// What backward needs to run the forward pass again, kept in the autograd context.
struct Recompute : torch::CustomClassHolder {
  std::function<at::Tensor(const at::Tensor&)> run;
  std::vector<at::Tensor> parameters;
  std::vector<GeneratorState> generators;
  c10::Device device = c10::Device(c10::kCPU);
  // The autocast precision of the first run (kFloat32: none).
  Precision precision = Precision::kFloat32;
  // The first run's DropoutRows, so that the second drops the same elements on any thread.
  std::pair<int64_t, int64_t> dropout_rows{0, 0};
};

Precision autocast_precision(c10::Device device) {
  switch (matmul_dtype(device, at::kFloat)) {
    case at::kBFloat16:
      return Precision::kBFloat16;
    case at::kHalf:
      return Precision::kFloat16;
    default:
      return Precision::kFloat32;
  }
}

struct Checkpoint : public torch::autograd::Function<Checkpoint> {
  // `parameters` are inputs only so that autograd routes their gradients through backward().
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                            at::TensorList /*parameters*/,
                            const c10::intrusive_ptr<Recompute>& recompute) {
    ctx->save_for_backward({input});
    ctx->saved_data["recompute"] = c10::IValue::make_capsule(recompute);
    return recompute->run(input);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto recompute =
        c10::static_intrusive_pointer_cast<Recompute>(ctx->saved_data["recompute"].toCapsule());
    const at::Tensor input = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    at::Tensor output;
    {
      // The generators as the first run found them, and afterwards as backward found them.
      std::vector<GeneratorState> now = generator_states(recompute->device);
      for (GeneratorState& state : recompute->generators) state.put_back();
      torch::AutoGradMode grad_mode(true);
      {
        std::optional<AutocastGuard> autocast;
        if (recompute->precision != Precision::kFloat32) {
          autocast.emplace(recompute->device, recompute->precision);
        }
        const RecomputeScope scope;
        const DropoutRows rows(recompute->dropout_rows.first, recompute->dropout_rows.second);
        output = recompute->run(input);
      }
      for (GeneratorState& state : now) state.put_back();
    }
    torch::autograd::variable_list inputs = {input};
    inputs.insert(inputs.end(), recompute->parameters.begin(), recompute->parameters.end());
    torch::autograd::variable_list result =
        torch::autograd::grad({output}, inputs, {grads[0]}, /*retain_graph=*/false,
                              /*create_graph=*/false, /*allow_unused=*/true);
    result.emplace_back();  // for `recompute`, not a tensor
    return result;
  }
};

}  // namespace

namespace {

// checkpointed() with the parameters whose gradients backward routes.
at::Tensor checkpointed_with(const at::Tensor& input, std::vector<at::Tensor> parameters,
                             std::function<at::Tensor(const at::Tensor&)> run) {
  if (!at::GradMode::is_enabled() || (!input.requires_grad() && parameters.empty()) ||
      recompute_depth > 0) {
    return run(input);
  }
  auto recompute = c10::make_intrusive<Recompute>();
  recompute->run = std::move(run);
  recompute->device = input.device();
  recompute->precision = autocast_precision(input.device());
  recompute->generators = generator_states(input.device());
  recompute->dropout_rows = DropoutRows::current();
  recompute->parameters = parameters;
  return Checkpoint::apply(input, at::TensorList(parameters), recompute);
}

}  // namespace

at::Tensor checkpointed(torch::nn::Module& module, const at::Tensor& input,
                        std::function<at::Tensor(const at::Tensor&)> run) {
  std::vector<at::Tensor> parameters;
  for (const at::Tensor& parameter : module.parameters()) {
    if (parameter.requires_grad()) parameters.push_back(parameter);
  }
  return checkpointed_with(input, std::move(parameters), std::move(run));
}

at::Tensor checkpointed(const at::Tensor& input, std::function<at::Tensor(const at::Tensor&)> run) {
  return checkpointed_with(input, {}, std::move(run));
}

}  // namespace adaptertune::detail
