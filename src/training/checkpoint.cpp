#include "adaptertune/training/checkpoint.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/safetensors.h"
#include "json_util.h"
#include "parameter_assignment.h"

namespace adaptertune {
namespace {

const char* kPrefix = "checkpoint-";

// Completed checkpoints under `root` by step, oldest first.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (DIR* dir = ::opendir(root.c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (name.rfind(kPrefix, 0) != 0) continue;
      const std::string digits = name.substr(std::string(kPrefix).size());
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      out.emplace_back(std::stoll(digits), name);
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
  const std::string name = kPrefix + std::to_string(state.global_step);
  const std::string final_dir = root_ + "/" + name;
  const std::string temp_dir = root_ + "/.tmp-" + name + "-" + std::to_string(::getpid());
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
  save_safetensors(temp_dir + "/trainable.safetensors", trainable);
  save_safetensors(temp_dir + "/optimizer.safetensors", moments);
  save_safetensors(temp_dir + "/rng.safetensors", rng);
  write_file_atomic(temp_dir + "/trainer_state.json", json.dump(2) + "\n");

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
  if (file_exists(pointer)) {
    std::string name = read_file(pointer);
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
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
  const detail::Json* seed = reader.take("data_seed");
  if (!seed->is_number_unsigned()) reader.fail("data_seed", "a non-negative integer");
  state.data_seed = seed->get<uint64_t>();
  state.scheduler_json = reader.take("scheduler")->dump();
  state.extra_json = reader.take("extra")->dump();
  if (const detail::Json* optimizer = reader.take("optimizer")) {
    detail::JsonObjectReader sub(*optimizer, path + " (optimizer)");
    sub.require({"lr", "steps"});
    sub.read("lr", saved.lr);
    const detail::Json& steps = *sub.take("steps");
    bool valid = steps.is_array();
    for (size_t g = 0; valid && g < steps.size(); ++g) {
      valid = steps[g].is_array();
      saved.steps.emplace_back();
      for (size_t i = 0; valid && i < steps[g].size(); ++i) {
        valid = steps[g][i].is_number_integer();
        if (valid) saved.steps.back().push_back(steps[g][i].get<int64_t>());
      }
    }
    if (!valid) sub.fail("steps", "a list of integer lists");
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
                "\" is not a trainable parameter of this model (another freeze policy?)");
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
