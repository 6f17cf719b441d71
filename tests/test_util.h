#pragma once
// Shared helpers for the unit tests: device parameterisation and a tiny model config.

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <ATen/record_function.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/bert_config.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/parameter_names.h"

namespace adaptertune::testing {

/// Tests derived from this run once per device: CPU always, CUDA when LibTorch sees a GPU
/// (otherwise the CUDA case is skipped, not failed).
class DeviceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda" && !torch::cuda::is_available()) {
      GTEST_SKIP() << "CUDA is not available in this build or on this machine";
    }
    torch::manual_seed(1234);
  }
  torch::Device device() const { return torch::Device(GetParam()); }
};

/// Instantiates a DeviceTest-derived suite for CPU and CUDA.
#define ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(Suite)                           \
  INSTANTIATE_TEST_SUITE_P(Devices, Suite, ::testing::Values("cpu", "cuda"), \
                           [](const auto& info) { return info.param; })

// Where names_recorded_by() collects, on the thread it runs on.
inline thread_local std::vector<std::string>* recorded_names = nullptr;

/// The names of the RecordFunctions (ATen's operators, the library's own kernels) that `work`
/// opens on this thread, in order: what LibTorch's profilers would see.
template <typename Work>
std::vector<std::string> names_recorded_by(Work&& work) {
  std::vector<std::string> names;
  recorded_names = &names;
  const at::CallbackHandle handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction& function)
                                     -> std::unique_ptr<at::ObserverContext> {
        if (recorded_names != nullptr) recorded_names->emplace_back(function.name());
        return nullptr;
      }).needsInputs(false));
  work();
  at::removeCallback(handle);
  recorded_names = nullptr;
  return names;
}

/// A small BERT (2 layers, hidden 32, 4 heads) that builds and runs in milliseconds.
inline BertConfig tiny_config() {
  BertConfig config;
  config.vocab_size = 120;
  config.hidden_size = 32;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.intermediate_size = 64;
  config.max_position_embeddings = 64;
  config.type_vocab_size = 2;
  return config;
}

/// A directory under the test temp dir, unique to this process, removed if it exists (each test
/// starts from nothing; a test run's leftovers never leak into the next).
inline std::string fresh_dir(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "adaptertune_" + name + "_" + std::to_string(::getpid());
  remove_tree(dir);
  return dir;
}

/// tiny_config() with three layers and no dropout, so that training and eval modes compute the
/// same thing (for exact comparisons of compositions and left-out layers).
inline BertConfig tiny_config_without_dropout() {
  BertConfig config = tiny_config();
  config.num_hidden_layers = 3;
  config.hidden_dropout_prob = 0;
  config.attention_probs_dropout_prob = 0;
  return config;
}

/// Draws every task-owned tensor of `model` (adapters, fusion layers, copies, heads) from
/// normal(0, std), so that no adapter is near the identity and no copy equals the base's.
inline void randomize_task_tensors(torch::nn::Module& model, double std = 0.2) {
  torch::NoGradGuard no_grad;
  for (const auto& item : model.named_parameters()) {
    if (parameter_task(item.key())) item.value().normal_(0, std);
  }
}

/// Token ids in [1, 120) (tiny_config()'s vocabulary), [rows, seq], from `seed`.
inline torch::Tensor random_ids(int64_t rows, int64_t seq, int seed = 5) {
  torch::manual_seed(seed);
  return torch::randint(1, 120, {rows, seq}, torch::kLong);
}

/// Largest absolute element-wise difference.
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

/// Whether `actual` equals `expected`, weights of two runs on `device` that should reach the
/// same values: bit for bit on the CPU, where the kernels these tests use are deterministic; to
/// float32 rounding on CUDA, whose reductions may add in another order from one run to the next.
inline ::testing::AssertionResult same_weights_on(const torch::Device& device,
                                                  const torch::Tensor& actual,
                                                  const torch::Tensor& expected) {
  const torch::Tensor a = actual.cpu();
  const torch::Tensor e = expected.cpu();
  if (a.sizes() != e.sizes() || a.dtype() != e.dtype()) {
    return ::testing::AssertionFailure() << "shape or dtype differs";
  }
  const bool same = device.is_cpu() ? torch::equal(a, e) : torch::allclose(a, e, 1e-4, 1e-6);
  if (same) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "largest difference " << max_abs_diff(a, e);
}

/// Runs `statement` and expects an adaptertune::Error whose message contains `fragment`.
#define EXPECT_ERROR_CONTAINS(statement, fragment)                                        \
  do {                                                                                    \
    try {                                                                                 \
      statement;                                                                          \
      ADD_FAILURE() << "expected adaptertune::Error containing \"" << (fragment) << "\""; \
    } catch (const ::adaptertune::Error& e) {                                             \
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)                  \
          << "message was: " << e.what();                                                 \
    }                                                                                     \
  } while (0)

/// The first entry of `dir` whose name contains `part` ("" when there is none).
inline std::string entry_containing(const std::string& dir, const std::string& part) {
  std::string found;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (std::string(e->d_name).find(part) != std::string::npos) {
        found = e->d_name;
        break;
      }
    }
    ::closedir(d);
  }
  return found;
}

/// Runs `write` in a child process and SIGKILLs it as soon as `dir` holds an entry whose name
/// contains `temp_part` (the writer's temporary file or directory), i.e. in the middle of the
/// write. Returns that entry's name when the kill landed while it still existed, "" when the
/// writer finished first (or no temporary entry was seen within 10 s).
inline std::string kill_writer_mid_write(const std::function<void()>& write, const std::string& dir,
                                         const std::string& temp_part) {
  const pid_t child = ::fork();
  if (child < 0) return "";
  if (child == 0) {
    write();
    ::_exit(0);
  }
  std::string temp;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (temp.empty() && std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) return "";  // finished before we saw it
    temp = entry_containing(dir, temp_part);
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  // Still there after the kill: the writer died before it could rename or remove it.
  return !temp.empty() && entry_containing(dir, temp) == temp ? temp : "";
}

}  // namespace adaptertune::testing
