// The library in a program whose malloc is TCMalloc, as the adaptertune tool and the benchmark are
// when built with it (CMake ADAPTERTUNE_WITH_TCMALLOC): the allocator is recognised, glibc's
// tuning stays out of the way, and the library's own hand-back of freed memory goes to TCMalloc.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/adaptertune.h"

namespace adaptertune {
namespace {

TEST(RuntimeTcmalloc, NamesTcmallocAsTheAllocator) {
  EXPECT_STREQ(cpu_allocator(), "tcmalloc");
}

TEST(RuntimeTcmalloc, LeavesTheAllocatorUntuned) {
  EXPECT_FALSE(tune_cpu_allocator()) << "glibc's settings would tune an allocator not in use";
}

TEST(RuntimeTcmalloc, StoresFrozenWeightsInBfloat16AndBack) {
  // FrozenLinearWeightsInDtype hands the float32 weights' memory back through TCMalloc's own
  // release when it stores them in bfloat16, and stores float32 copies again when it ends.
  struct Model : torch::nn::Module {
    torch::nn::Linear dense{register_module("dense", torch::nn::Linear(256, 256))};
  };
  Model model;
  {
    torch::NoGradGuard no_grad;
    for (auto& parameter : model.parameters()) {
      parameter.copy_(parameter.to(torch::kBFloat16));  // values bf16 holds exactly
      parameter.set_requires_grad(false);
    }
  }
  const torch::Tensor before = model.dense->weight.detach().clone();
  {
    FrozenLinearWeightsInDtype frozen(model, Precision::kBFloat16);
    EXPECT_EQ(frozen.stored(), 1);
    EXPECT_EQ(model.dense->weight.scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(model.dense->weight.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(model.dense->weight, before));
}

}  // namespace
}  // namespace adaptertune
