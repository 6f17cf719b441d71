#include "adaptertune/training/checkpoint.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <map>

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/safetensors.h"
#include "json_util.h"
#include "parameter_assignment.h"
#include "run_checks.h"

namespace adaptertune {
namespace {

const char* kPrefix = "checkpoint-";

const char* kTempPrefix = ".tmp-checkpoint-";

// The step of a directory name "checkpoint-<digits>", or -1 when `name` is not one.
int64_t checkpoint_step(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const std::string digits = name.substr(std::string(kPrefix).size());
  if (digits.empty() || digits.size() > 18 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return -1;
  }
  return std::stoll(digits);
}

// Completed checkpoints under `root` by step, oldest first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (DIR* dir = ::opendir(root.c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      const int64_t step = checkpoint_step(name);
      if (step >= 0) out.emplace_back(step, name);
    }
    ::closedir(dir);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<at::Generator> generators() {
  std::vector<at::Generator> out{at::detail::getDefaultCPUGenerator()};
  if (at::hasCUDA()) {
    for (int64_t i = 0; i < static_cast<int64_t>(at::detail::getCUDAHooks().getNumGPUs()); ++i) {
      out.push_back(at::globalContext().defaultGenerator(
          at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(i))));
    }
  }
  return out;
}

std::string generator_name(size_t index) {
  return index == 0 ? "rng.cpu" : "rng.cuda." + std::to_string(index - 1);
}

}  // namespace

CheckpointManager::CheckpointManager(std::string root, int keep)
    : root_(std::move(root)), keep_(keep) {
  if (keep_ < 1) throw Error("CheckpointManager: keep must be at least 1");
}

std::string CheckpointManager::save(const torch::nn::Module& model, const AdamW& optimizer,
                                    const TrainingState& state) {
  make_directories(root_);
  remove_stale_temporaries();
  const std::string name = kPrefix + std::to_string(state.global_step);
  const std::string final_dir = root_ + "/" + name;
  const std::string temp_dir = root_ + "/" + kTempPrefix + std::to_string(state.global_step) + "-" +
                               std::to_string(::getpid());
  remove_tree(temp_dir);
  make_directories(temp_dir);

  NamedTensors trainable;
  for (const auto& item : model.named_parameters()) {
    if (item.value().requires_grad()) trainable.emplace_back(item.key(), item.value());
  }
  NamedTensors moments;
  detail::Json steps = detail::Json::array();
  for (size_t g = 0; g < optimizer.groups().size(); ++g) {
    const auto& group = optimizer.groups()[g];
    const auto& s = optimizer.state()[g];
    detail::Json group_steps = detail::Json::array();
    for (size_t i = 0; i < group.params.size(); ++i) {
      const std::string key = "group" + std::to_string(g) + "." +
                              (group.names.empty() ? std::to_string(i) : group.names[i]);
      moments.emplace_back(key + ".exp_avg", s.exp_avg[i]);
      moments.emplace_back(key + ".exp_avg_sq", s.exp_avg_sq[i]);
      group_steps.push_back(s.steps[i]);
    }
    steps.push_back(group_steps);
  }
  NamedTensors rng;
  auto gens = generators();
  for (size_t i = 0; i < gens.size(); ++i) {
    std::lock_guard<std::mutex> lock(gens[i].mutex());
    rng.emplace_back(generator_name(i), gens[i].get_state());
  }
  detail::Json json = {
      {"global_step", state.global_step},
      {"epoch", state.epoch},
      {"batch_in_epoch", state.batch_in_epoch},
      {"data_seed", state.data_seed},
      {"scheduler", detail::parse_json(state.scheduler_json, "scheduler state")},
      {"extra", detail::parse_json(state.extra_json, "extra state")},
      {"optimizer", {{"lr", optimizer.lr()}, {"steps", steps}}},
  };
  if (state.loss_scale > 0) {
    json["loss_scaling"] = {{"scale", state.loss_scale},
                            {"growth_tracker", state.loss_scale_growth_tracker},
                            {"skipped_steps", state.skipped_steps}};
  }
  save_safetensors(temp_dir + "/trainable.safetensors", trainable);
  save_safetensors(temp_dir + "/optimizer.safetensors", moments);
  save_safetensors(temp_dir + "/rng.safetensors", rng);
  write_file_atomic(temp_dir + "/trainer_state.json", json_text(json, 2) + "\n");

  remove_tree(final_dir);  // a checkpoint of the same step from an earlier, abandoned attempt
  if (std::rename(temp_dir.c_str(), final_dir.c_str()) != 0) {
    throw Error(final_dir + ": cannot rename the completed checkpoint into place");
  }
  sync_directory(root_);
  write_file_atomic(root_ + "/latest", name + "\n");
  auto all = list_checkpoints(root_);
  for (size_t i = 0; i + static_cast<size_t>(keep_) < all.size(); ++i) {
    if (all[i].second != name) remove_tree(root_ + "/" + all[i].second);
  }
  return final_dir;
}

std::optional<std::string> CheckpointManager::latest() const {
  const std::string pointer = root_ + "/latest";
  if (optional_file_exists(pointer)) {
    std::string name = read_file(pointer);
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    if (checkpoint_step(name) < 0) {
      std::string shown = name.substr(0, 80);
      for (char& c : shown) {
        if (static_cast<unsigned char>(c) < 0x20) c = '?';
      }
      throw Error(pointer + ": names \"" + shown +
                  "\", expected checkpoint-<step> (a checkpoint of this directory)");
    }
    if (file_exists(root_ + "/" + name + "/trainer_state.json")) return root_ + "/" + name;
  }
  // No pointer (or a dangling one): the newest directory that is complete.
  auto all = list_checkpoints(root_);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (file_exists(root_ + "/" + it->second + "/trainer_state.json")) {
      return root_ + "/" + it->second;
    }
  }
  return std::nullopt;
}

void CheckpointManager::remove_stale_temporaries() const {
  std::vector<std::string> stale;
  if (DIR* dir = ::opendir(root_.c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (name.rfind(kTempPrefix, 0) != 0) continue;
      // ".tmp-checkpoint-<step>-<pid>": kept while its writer runs (another process resuming the
      // same run is refused elsewhere; this only spares a live writer).
      const auto dash = name.rfind('-');
      const std::string digits = name.substr(dash + 1);
      if (!digits.empty() && digits.size() < 10 &&
          digits.find_first_not_of("0123456789") == std::string::npos) {
        const auto pid = static_cast<pid_t>(std::stol(digits));
        if (pid != ::getpid() && (::kill(pid, 0) == 0 || errno == EPERM)) continue;
      }
      stale.push_back(root_ + "/" + name);
    }
    ::closedir(dir);
  }
  for (const auto& path : stale) remove_tree(path);
}

void CheckpointManager::check_position(const TrainingState& state, const std::string& directory,
                                       const DataShape& shape) {
  const std::string path = directory + "/trainer_state.json";
  auto fail = [&](const std::string& key, const std::string& message) {
    throw Error(path + ": key '" + key + "': " + message);
  };
  if (shape.batches_per_epoch < 1 || shape.gradient_accumulation < 1) {
    throw Error("check_position: a data shape needs at least one batch and one batch per step");
  }
  if (state.data_seed != shape.data_seed) {
    fail("data_seed", std::to_string(state.data_seed) + " is not this run's seed " +
                          std::to_string(shape.data_seed) + " (resume with the same --seed)");
  }
  if (state.batch_in_epoch > shape.batches_per_epoch) {
    fail("batch_in_epoch", std::to_string(state.batch_in_epoch) + " is beyond the epoch's " +
                               std::to_string(shape.batches_per_epoch) +
                               " batches (other data or batch size?)");
  }
  // Every epoch takes at least one step, so a step count below the epoch is impossible (and the
  // products below cannot overflow).
  if (state.epoch > state.global_step) {
    fail("epoch", std::to_string(state.epoch) + " is more than the " +
                      std::to_string(state.global_step) + " steps taken");
  }
  const int64_t steps_per_epoch =
      (shape.batches_per_epoch + shape.gradient_accumulation - 1) / shape.gradient_accumulation;
  const int64_t position =
      state.epoch * steps_per_epoch +
      (state.batch_in_epoch + shape.gradient_accumulation - 1) / shape.gradient_accumulation;
  const bool fits =
      shape.batches_may_skip_steps ? state.global_step <= position : state.global_step == position;
  if (!fits) {
    fail("global_step", std::to_string(state.global_step) + " does not fit epoch " +
                            std::to_string(state.epoch) + ", batch " +
                            std::to_string(state.batch_in_epoch) + " of " +
                            std::to_string(shape.batches_per_epoch) +
                            " batches per epoch (other data, batch size or accumulation?)");
  }
}

namespace {

// trainer_state.json, read and checked whole before a checkpoint changes anything.
struct SavedState {
  TrainingState state;
  double lr = 0;
  /// AdamW's step count per parameter, per group.
  std::vector<std::vector<int64_t>> steps;
};

// Unknown keys are allowed: a newer writer may add some.
SavedState parse_state(const detail::Json& json, const std::string& path) {
  SavedState saved;
  TrainingState& state = saved.state;
  detail::JsonObjectReader reader(json, path);
  reader.require({"global_step", "epoch", "batch_in_epoch", "data_seed", "scheduler", "extra"});
  reader.read("global_step", state.global_step);
  reader.read("epoch", state.epoch);
  reader.read("batch_in_epoch", state.batch_in_epoch);
  if (state.global_step < 0) reader.fail("global_step", "a step count >= 0");
  if (state.epoch < 0) reader.fail("epoch", "an epoch >= 0");
  if (state.batch_in_epoch < 0) reader.fail("batch_in_epoch", "a batch position >= 0");
  const detail::Json* seed = reader.take("data_seed");
  if (!seed->is_number_unsigned()) reader.fail("data_seed", "a non-negative integer");
  state.data_seed = seed->get<uint64_t>();
  state.scheduler_json = json_text(*reader.take("scheduler"));
  state.extra_json = json_text(*reader.take("extra"));
  if (const detail::Json* optimizer = reader.take("optimizer")) {
    detail::JsonObjectReader sub(*optimizer, path + " (optimizer)");
    sub.require({"lr", "steps"});
    sub.read("lr", saved.lr);
    if (!std::isfinite(saved.lr) || saved.lr < 0) sub.fail("lr", "a finite learning rate >= 0");
    const detail::Json& steps = *sub.take("steps");
    bool valid = steps.is_array();
    for (size_t g = 0; valid && g < steps.size(); ++g) {
      valid = steps[g].is_array();
      saved.steps.emplace_back();
      for (size_t i = 0; valid && i < steps[g].size(); ++i) {
        const std::optional<int64_t> step = detail::integer_value(steps[g][i]);
        valid = step && *step >= 0 && *step <= state.global_step;
        if (valid) saved.steps.back().push_back(*step);
      }
    }
    if (!valid) sub.fail("steps", "lists of step counts from 0 to global_step");
  }
  if (const detail::Json* scaling = reader.take("loss_scaling")) {
    detail::JsonObjectReader sub(*scaling, path + " (loss_scaling)");
    sub.require({"scale", "growth_tracker", "skipped_steps"});
    sub.read("scale", state.loss_scale);
    sub.read("growth_tracker", state.loss_scale_growth_tracker);
    sub.read("skipped_steps", state.skipped_steps);
    if (!detail::valid_loss_scale(state.loss_scale)) sub.fail("scale", "a power of two >= 1");
    if (state.loss_scale_growth_tracker < 0) sub.fail("growth_tracker", "a step count >= 0");
    if (state.skipped_steps < 0 || state.skipped_steps > state.global_step) {
      sub.fail("skipped_steps", "a step count from 0 to global_step");
    }
  }
  return saved;
}

SavedState read_saved_state(const std::string& directory, bool with_optimizer) {
  const std::string path = directory + "/trainer_state.json";
  const detail::Json json = detail::parse_json(read_file(path), path);
  if (!json.is_object()) throw Error(path + ": expected a JSON object");
  if (with_optimizer && !json.contains("optimizer")) {
    throw Error(path + ": key 'optimizer' is missing");
  }
  return parse_state(json, path);
}

}  // namespace

TrainingState CheckpointManager::read_state(const std::string& directory) {
  return read_saved_state(directory, /*with_optimizer=*/false).state;
}

TrainingState CheckpointManager::load(const std::string& directory, torch::nn::Module& model,
                                      AdamW& optimizer) {
  // Everything is read and checked before anything is changed.
  const std::string state_path = directory + "/trainer_state.json";
  const SavedState saved = read_saved_state(directory, /*with_optimizer=*/true);

  const std::string trainable_path = directory + "/trainable.safetensors";
  std::map<std::string, at::Tensor> tensors;
  for (auto& [name, tensor] : load_safetensors(trainable_path)) tensors[name] = tensor;
  detail::ParameterAssignment parameters(trainable_path);
  for (const auto& item : model.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    auto it = tensors.find(item.key());
    if (it == tensors.end()) {
      throw Error(trainable_path + ": no tensor for trainable parameter \"" + item.key() + "\"");
    }
    parameters.add(item.key(), item.value(), item.key(), it->second);
    tensors.erase(it);
  }
  if (!tensors.empty()) {
    throw Error(trainable_path + ": tensor \"" + tensors.begin()->first +
                "\" is not a trainable parameter of this model (was it trained with another freeze "
                "policy, adapter or fusion config?)");
  }

  const std::string optimizer_path = directory + "/optimizer.safetensors";
  std::map<std::string, at::Tensor> moments;
  for (auto& [name, tensor] : load_safetensors(optimizer_path)) moments[name] = tensor;
  if (saved.steps.size() != optimizer.groups().size()) {
    throw Error(state_path + ": " + std::to_string(saved.steps.size()) +
                " optimizer groups, expected " + std::to_string(optimizer.groups().size()));
  }
  std::vector<AdamW::State> optimizer_state;
  for (size_t g = 0; g < optimizer.groups().size(); ++g) {
    const auto& group = optimizer.groups()[g];
    if (saved.steps[g].size() != group.params.size()) {
      throw Error(state_path + ": optimizer group " + std::to_string(g) +
                  " does not match this optimizer's parameters");
    }
    AdamW::State s;
    for (size_t i = 0; i < group.params.size(); ++i) {
      const std::string key = "group" + std::to_string(g) + "." +
                              (group.names.empty() ? std::to_string(i) : group.names[i]);
      for (const char* part : {".exp_avg", ".exp_avg_sq"}) {
        if (moments.count(key + part) == 0) {
          throw Error(optimizer_path + ": no tensor \"" + key + part + "\"");
        }
      }
      s.exp_avg.push_back(moments[key + ".exp_avg"]);
      s.exp_avg_sq.push_back(moments[key + ".exp_avg_sq"]);
      s.steps.push_back(saved.steps[g][i]);
    }
    optimizer_state.push_back(std::move(s));
  }
  const std::string rng_path = directory + "/rng.safetensors";
  std::map<std::string, at::Tensor> rng;
  for (auto& [name, tensor] : load_safetensors(rng_path)) rng[name] = tensor;
  auto gens = generators();
  if (rng.count(generator_name(0)) == 0) throw Error(rng_path + ": no CPU RNG state");
  for (size_t i = 0; i < gens.size(); ++i) {
    auto it = rng.find(generator_name(i));
    if (it == rng.end()) continue;
    const at::Tensor current = gens[i].get_state();
    if (it->second.scalar_type() != at::kByte || !it->second.sizes().equals(current.sizes())) {
      throw Error(rng_path + ": tensor \"" + it->first + "\" is not a generator state (" +
                  std::to_string(current.numel()) + " bytes, dtype U8)");
    }
  }

  optimizer.load_state(std::move(optimizer_state));  // validates shapes before changing
  optimizer.set_lr(saved.lr);
  parameters.copy_all();
  for (size_t i = 0; i < gens.size(); ++i) {
    auto it = rng.find(generator_name(i));
    if (it == rng.end()) continue;  // a run resumed on a machine with more GPUs
    std::lock_guard<std::mutex> lock(gens[i].mutex());
    gens[i].set_state(it->second);
  }
  return saved.state;
}

}  // namespace adaptertune
