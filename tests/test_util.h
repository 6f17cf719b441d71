#pragma once
// Shared helpers for the unit tests: device parameterisation and a tiny model config.

#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/bert_config.h"

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

/// Largest absolute element-wise difference.
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
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

}  // namespace adaptertune::testing
