#include "adaptertune/tasks/task_sampler.h"

#include <gtest/gtest.h>

#include <numeric>

#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

std::vector<int64_t> counts(const std::vector<size_t>& order, size_t tasks) {
  std::vector<int64_t> out(tasks, 0);
  for (size_t t : order) ++out.at(t);
  return out;
}

TEST(TaskSampler, ProportionalRoundsGiveEachTaskOnePassOverItsData) {
  const TaskSampler sampler({70, 4, 3}, 1.0, 42);
  EXPECT_EQ(sampler.batches_per_round(), 77);
  EXPECT_EQ(sampler.shares(), (std::vector<int64_t>{70, 4, 3}));
  for (int64_t round = 0; round < 3; ++round) {
    const auto order = sampler.round_order(round);
    ASSERT_EQ(order.size(), 77u);
    EXPECT_EQ(counts(order, 3), (std::vector<int64_t>{70, 4, 3}));
  }
  // Shuffled, and differently in each round: the small tasks are not all at one end.
  EXPECT_NE(sampler.round_order(0), sampler.round_order(1));
  const auto order = sampler.round_order(0);
  const auto first_small = std::find_if(order.begin(), order.end(), [](size_t t) { return t > 0; });
  EXPECT_LT(first_small - order.begin(), 70);
}

TEST(TaskSampler, TheOrderDependsOnlyOnSeedAndRound) {
  const TaskSampler a({20, 10}, 1.0, 7), b({20, 10}, 1.0, 7), c({20, 10}, 1.0, 8);
  EXPECT_EQ(a.round_order(3), b.round_order(3));
  EXPECT_NE(a.round_order(3), c.round_order(3));
  // One task: its batches in order, whatever the seed.
  const auto one = TaskSampler({5}, 2.0, 9).round_order(4);
  EXPECT_EQ(one, (std::vector<size_t>(5, 0)));
}

TEST(TaskSampler, DrawnBeforeCountsEachTasksBatchesUpToAPosition) {
  const TaskSampler sampler({9, 4, 2}, 1.0, 5);
  for (int64_t round : {0, 2}) {
    const auto order = sampler.round_order(round);
    std::vector<int64_t> expected = {9 * round, 4 * round, 2 * round};
    for (int64_t batch = 0; batch <= sampler.batches_per_round(); ++batch) {
      EXPECT_EQ(sampler.drawn_before(round, batch), expected) << round << " " << batch;
      if (batch < sampler.batches_per_round()) ++expected[order[static_cast<size_t>(batch)]];
    }
  }
  EXPECT_ERROR_CONTAINS(sampler.drawn_before(0, 16), "outside the rounds of 15 batches");
  EXPECT_ERROR_CONTAINS(sampler.drawn_before(-1, 0), "outside the rounds");
}

TEST(TaskSampler, TemperatureFlattensOrSharpensTheShares) {
  // Shares ~ batches^(1/T), scaled to the round (100 + 10 + 1 = 111 batches).
  const TaskSampler flat({100, 10, 1}, 2.0, 1);
  // weights 10, 3.162, 1: 111 * w / 14.162 = 78.4, 24.8, 7.8 -> 78, 25, 8.
  EXPECT_EQ(flat.shares(), (std::vector<int64_t>{78, 25, 8}));
  const TaskSampler uniform({100, 10, 1}, 1e6, 1);
  EXPECT_EQ(uniform.shares(), (std::vector<int64_t>{37, 37, 37}));
  // Below 1 the largest task takes more, but every task keeps at least one batch per round.
  const TaskSampler sharp({100, 10, 1}, 0.25, 1);
  EXPECT_EQ(sharp.shares()[2], 1);
  EXPECT_GT(sharp.shares()[0], 100);
  EXPECT_EQ(std::accumulate(sharp.shares().begin(), sharp.shares().end(), int64_t{0}), 111);
  EXPECT_EQ(counts(sharp.round_order(0), 3), sharp.shares());
}

TEST(TaskSampler, RefusesWhatCannotBeSampled) {
  EXPECT_ERROR_CONTAINS(TaskSampler({}, 1.0, 0), "no task to sample");
  EXPECT_ERROR_CONTAINS(TaskSampler({3, 0}, 1.0, 0),
                        "task 1 has 0 batches per epoch, expected >= 1");
  EXPECT_ERROR_CONTAINS(TaskSampler({3}, 0.0, 0), "temperature must be a positive finite number");
  EXPECT_ERROR_CONTAINS(TaskSampler({3}, std::nan(""), 0), "temperature must be a positive");
}

}  // namespace
}  // namespace adaptertune
