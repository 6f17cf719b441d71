#include "adaptertune/training/training_engine.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/layers/attention.h"
#include "adaptertune/layers/linear.h"
#include "adaptertune/training/freeze_policy.h"
#include "run_checks.h"

namespace adaptertune {
namespace {

using Json = nlohmann::ordered_json;

// A JSON object given as text by the loop; Error naming `what` when it is not one.
Json parse_object(const std::string& text, const std::string& what) {
  Json value = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!value.is_object()) throw Error("TrainingEngine: " + what + " is not a JSON object: " + text);
  return value;
}

TrainingEngineOptions validated(TrainingEngineOptions options) {
  options.validate();
  return options;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void TrainingEngineOptions::validate() const {
  const char* owner = "TrainingEngineOptions";
  detail::check_finite(owner, "lr", lr, 0, /*exclusive=*/true);
  detail::check_fraction(owner, "warmup_ratio", warmup_ratio);
  detail::check_at_least(owner, "total_steps", total_steps, 1);
  detail::check_at_least(owner, "warmup_steps", warmup_steps, -1);
  detail::check_at_least(owner, "decay_steps", decay_steps, 0);
  detail::check_finite(owner, "weight_decay", weight_decay, 0);
  detail::check_finite(owner, "max_grad_norm", max_grad_norm, 0);
  detail::check_at_least(owner, "gradient_accumulation", gradient_accumulation, 1);
  detail::check_at_least(owner, "keep_checkpoints", keep_checkpoints, 1);
  if (checkpoint_dir.empty()) throw Error("TrainingEngineOptions: checkpoint_dir is empty");
  if (!detail::valid_loss_scale(initial_loss_scale)) {
    throw Error("TrainingEngineOptions: initial_loss_scale is " +
                format_number(initial_loss_scale) +
                ", expected a power of two >= 1 (unscaling by it must round nothing)");
  }
  detail::check_at_least(owner, "loss_scale_growth_interval", loss_scale_growth_interval, 1);
}

bool TrainingEngineOptions::scales_loss() const {
  return loss_scaling == LossScaling::kOn ||
         (loss_scaling == LossScaling::kAuto && precision == Precision::kFloat16);
}

TrainingEngine::TrainingEngine(torch::nn::Module& model, TrainingEngineOptions options)
    : model_(model),
      options_(validated(std::move(options))),
      trainable_(trainable_parameters(model)),
      schedule_(LrSchedule::make(options_.schedule, options_.lr, options_.total_steps,
                                 options_.warmup_ratio, options_.warmup_steps,
                                 options_.decay_steps)),
      checkpoints_(options_.checkpoint_dir, options_.keep_checkpoints),
      frozen_weights_(model, options_.frozen_weights_in_compute_dtype ? options_.precision
                                                                      : Precision::kFloat32),
      packed_projections_(std::make_unique<FrozenProjectionsPacked>(model)),
      prepacked_weights_(options_.prepack_frozen_weights
                             ? std::make_unique<FrozenLinearWeightsPrepacked>(model)
                             : nullptr) {
  AdamWOptions adamw;
  adamw.lr = options_.lr;
  optimizer_ = std::make_unique<AdamW>(weight_decay_groups(model, options_.weight_decay), adamw);
  state_.data_seed = options_.data_seed;
  if (options_.scales_loss()) state_.loss_scale = options_.initial_loss_scale;
}

TrainingEngine::~TrainingEngine() = default;

void TrainingEngine::backward(const at::Tensor& loss, double share) {
  double factor = share / static_cast<double>(options_.gradient_accumulation);
  // A power of two: the product rounds as the unscaled one does.
  if (state_.loss_scale > 0) factor *= state_.loss_scale;
  (loss * factor).backward();
}

bool TrainingEngine::unscale_gradients() {
  std::vector<at::Tensor> grads;
  for (const at::Tensor& param : trainable_) {
    if (param.grad().defined()) grads.push_back(param.grad());
  }
  if (grads.empty()) return true;
  const double inverse = 1.0 / state_.loss_scale;  // exact: the scale is a power of two
  const bool same_cuda_float = std::all_of(grads.begin(), grads.end(), [&](const at::Tensor& g) {
    return g.is_cuda() && g.device() == grads[0].device() && g.scalar_type() == at::kFloat;
  });
  if (same_cuda_float) {
    // One kernel over every gradient, as GradScaler unscales them on CUDA (LibTorch 1.13 has it
    // for CUDA only).
    at::Tensor found_non_finite = at::zeros({1}, grads[0].options());
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found_non_finite,
                                                   at::full({1}, inverse, grads[0].options()));
    return found_non_finite.item<float>() == 0;
  }
  at::Tensor finite;
  for (at::Tensor& grad : grads) {
    grad.mul_(inverse);
    const at::Tensor all = at::isfinite(grad).all();
    finite = finite.defined() ? at::logical_and(finite, all) : all;
  }
  return finite.item<bool>();
}

double TrainingEngine::step() {
  const double lr = schedule_.lr_at(state_.schedule_step());
  if (state_.loss_scale > 0 && !unscale_gradients()) {
    // GradScaler's rule: this step's update is dropped and the scale halves.
    optimizer_->zero_grad();
    if (state_.loss_scale / 2 < 1) {
      throw Error("TrainingEngine: step " + std::to_string(state_.global_step + 1) +
                  ": the gradients are not finite even with the loss scaled by 1 (" +
                  std::to_string(state_.skipped_steps + 1) +
                  " steps skipped so far): the loss or the forward pass itself overflows or is "
                  "NaN" +
                  (options_.precision == Precision::kFloat16
                       ? " (fp16 ends at 65504; bf16 has float32's range)"
                       : ""));
    }
    state_.loss_scale /= 2;
    state_.loss_scale_growth_tracker = 0;
    ++state_.skipped_steps;
    ++state_.global_step;
    return lr;
  }
  if (options_.max_grad_norm > 0)
    torch::nn::utils::clip_grad_norm_(trainable_, options_.max_grad_norm);
  optimizer_->set_lr(lr);
  optimizer_->step();
  optimizer_->zero_grad();
  ++state_.global_step;
  if (state_.loss_scale > 0 &&
      ++state_.loss_scale_growth_tracker >= options_.loss_scale_growth_interval) {
    state_.loss_scale *= 2;
    state_.loss_scale_growth_tracker = 0;
  }
  return lr;
}

std::optional<std::string> TrainingEngine::resume(
    const DataShape& shape, const std::string& fingerprint_json,
    const std::function<void(const TrainingState&, const std::string&)>& check_extra) {
  const std::optional<std::string> latest = checkpoints_.latest();
  if (!latest) return std::nullopt;
  resume_from(*latest, shape, fingerprint_json, check_extra);
  return latest;
}

void TrainingEngine::resume_from(
    const std::string& directory, const DataShape& shape, const std::string& fingerprint_json,
    const std::function<void(const TrainingState&, const std::string&)>& check_extra) {
  const std::string path = directory + "/trainer_state.json";
  if (!optional_file_exists(path)) {
    throw Error(directory + ": not a complete checkpoint (no trainer_state.json)");
  }
  // Everything is checked before the checkpoint changes the model.
  const TrainingState saved = CheckpointManager::read_state(directory);
  const Json fingerprint = parse_object(fingerprint_json, "the data fingerprint");
  const Json extra = Json::parse(saved.extra_json, nullptr, /*allow_exceptions=*/false);
  if (!extra.is_object()) throw Error(path + ": key 'extra' is not a JSON object");
  // Checkpoints from before fingerprints were recorded have none to compare.
  if (extra.contains("data")) {
    for (const auto& [key, value] : fingerprint.items()) {
      const Json& recorded = extra["data"].contains(key) ? extra["data"][key] : Json();
      if (recorded != value) {
        throw Error(path + ": key 'extra': the checkpoint was made with " + key + " " +
                    json_text(recorded) + ", this run has " + json_text(value) +
                    (ends_with(key, "_sha256") ? " (other training data)" : ""));
      }
    }
  }
  // After the fingerprint: a position that does not fit is what other data or options cause,
  // and the fingerprint names which.
  CheckpointManager::check_position(saved, directory, shape);
  if (check_extra) check_extra(saved, path);
  state_ = CheckpointManager::load(directory, model_, *optimizer_);
  // A checkpoint of a run that scaled otherwise (another precision): this run's own rule.
  if (!options_.scales_loss()) {
    state_.loss_scale = 0;
  } else if (state_.loss_scale == 0) {
    state_.loss_scale = options_.initial_loss_scale;
  }
}

std::string TrainingEngine::save_checkpoint(const std::string& fingerprint_json,
                                            const std::string& extra_json) {
  Json extra = parse_object(extra_json, "the checkpoint's extra state");
  extra["data"] = parse_object(fingerprint_json, "the data fingerprint");
  state_.extra_json = json_text(extra);
  state_.scheduler_json = schedule_.to_json();
  return checkpoints_.save(model_, *optimizer_, state_);
}

}  // namespace adaptertune
