// An application that sets LibTorch's thread count itself keeps it: building a model (which
// applies the library's default) must not override it. Its own executable, since the default is
// applied once per process.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/bert_model.h"
#include "adaptertune/runtime.h"
#include "test_util.h"

namespace adaptertune {
namespace {

TEST(Runtime, KeepsTheThreadCountTheApplicationChoseWithLibTorch) {
  // A count that is neither the library's default nor LibTorch's own (that one cannot be told
  // apart from no choice at all; adaptertune::set_num_threads() covers it).
  int chosen = 1;
  while (chosen == default_num_threads() || chosen == torch::get_num_threads()) ++chosen;
  torch::set_num_threads(chosen);
  BertModel model(testing::tiny_config());
  EXPECT_EQ(torch::get_num_threads(), chosen);
}

}  // namespace
}  // namespace adaptertune
