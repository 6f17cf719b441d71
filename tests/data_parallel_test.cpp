// What the training loops share in a group (src/training/data_parallel.h): the rows each process
// takes, and the stream each batch's dropout draws from.

#include "training/data_parallel.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dropout.h"

namespace adaptertune {
namespace {

TEST(ShareRange, SlicesABatchEvenlyWithTheFirstProcessesTakingTheRest) {
  using Range = std::pair<size_t, size_t>;
  EXPECT_EQ(detail::share_range(10, 0, 3), Range(0, 4));
  EXPECT_EQ(detail::share_range(10, 1, 3), Range(4, 7));
  EXPECT_EQ(detail::share_range(10, 2, 3), Range(7, 10));
  EXPECT_EQ(detail::share_range(1, 1, 2), Range(1, 1)) << "fewer rows than processes";
  EXPECT_EQ(detail::share_of({5, 6, 7}, 1, 2), std::vector<size_t>({7}));
}

// The mask hashed_dropout() draws on the CPU while `stream` lives.
torch::Tensor mask_in(uint64_t seed, int64_t epoch, int64_t batch, int64_t stream) {
  const detail::BatchDropoutStream dropout(c10::Device(c10::kCPU), seed, epoch, batch, stream);
  return hashed_dropout(torch::ones({64}), 0.5, true) != 0;
}

TEST(BatchDropoutStream, DrawsFromTheBatchsPlaceAndStreamAlone) {
  torch::manual_seed(1);
  const torch::Tensor mask = mask_in(7, 2, 3, 0);
  torch::manual_seed(99);  // whatever the generator's state before
  EXPECT_TRUE(torch::equal(mask_in(7, 2, 3, 0), mask));
  EXPECT_FALSE(torch::equal(mask_in(8, 2, 3, 0), mask)) << "seed";
  EXPECT_FALSE(torch::equal(mask_in(7, 1, 3, 0), mask)) << "epoch";
  EXPECT_FALSE(torch::equal(mask_in(7, 2, 4, 0), mask)) << "batch";
  EXPECT_FALSE(torch::equal(mask_in(7, 2, 3, 1), mask)) << "stream (a rank's own)";
}

TEST(BatchDropoutStream, LeavesTheCpuGeneratorWhereItWas) {
  torch::manual_seed(5);
  const torch::Tensor expected = torch::rand({4});
  torch::manual_seed(5);
  mask_in(7, 0, 0, 0);
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));
}

TEST(OwnDropoutStream, NoneForAProcessAlone) {
  EXPECT_FALSE(detail::own_dropout_stream(nullptr, c10::Device(c10::kCPU), 7, 0, 0).has_value());
}

}  // namespace
}  // namespace adaptertune
