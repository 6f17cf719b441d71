// Batching: the deterministic epoch orders, padding and its mask, and a process's slice of a
// global batch.

#include "adaptertune/tasks/batcher.h"

#include <algorithm>
#include <set>

#include <torch/torch.h>

#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

// `lengths.size()` examples, example i of lengths[i] tokens (ids 100 + i), labelled i % 2.
EncodedDataset examples_of_lengths(const std::vector<size_t>& lengths) {
  EncodedDataset data;
  for (size_t i = 0; i < lengths.size(); ++i) {
    Encoding e;
    e.input_ids.assign(lengths[i], static_cast<int64_t>(100 + i));
    e.token_type_ids.assign(lengths[i], 0);
    e.attention_mask.assign(lengths[i], 1);
    data.encodings.push_back(e);
    data.targets.push_back(static_cast<double>(i % 2));
    data.indices.push_back(static_cast<int64_t>(i));
  }
  return data;
}

TEST(Batcher, AnEpochsOrderDependsOnlyOnTheSeedAndTheEpoch) {
  const EncodedDataset data = examples_of_lengths(std::vector<size_t>(10, 4));
  BatcherOptions options;
  options.batch_size = 3;
  options.seed = 5;
  const Batcher batcher(data, options);
  EXPECT_EQ(batcher.batches_per_epoch(), 4);
  const auto first = batcher.epoch_order(0);
  EXPECT_EQ(Batcher(data, options).epoch_order(0), first);
  EXPECT_NE(batcher.epoch_order(1), first);
  std::multiset<size_t> seen;
  for (const auto& rows : first) seen.insert(rows.begin(), rows.end());
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_EQ(std::set<size_t>(seen.begin(), seen.end()).size(), 10u) << "every example once";
  EXPECT_EQ(first.back().size(), 1u) << "the last batch holds what is left";
}

// Evaluation and prediction: the same batches every epoch and every run, each example once, in
// batches of similar lengths, padded with the pad id given.
TEST(Batcher, InferenceBatchesAreFixedAndGroupedByLength) {
  const EncodedDataset data = examples_of_lengths({9, 2, 8, 3, 9, 2, 8, 3});
  const BatcherOptions options = BatcherOptions::for_inference(2, 7);
  EXPECT_FALSE(options.shuffle);
  const Batcher batcher(data, options);
  const auto order = batcher.epoch_order(0);
  EXPECT_EQ(batcher.epoch_order(1), order);
  ASSERT_EQ(order.size(), 4u);
  std::set<size_t> seen;
  for (const auto& rows : order) {
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(data.encodings[rows[0]].input_ids.size(), data.encodings[rows[1]].input_ids.size())
        << "no padding is needed when every length comes twice";
    seen.insert(rows.begin(), rows.end());
  }
  EXPECT_EQ(seen.size(), 8u);
  const auto mixed = examples_of_lengths({2, 5});
  const Batch batch = Batcher(mixed, options).make_batch({0, 1});
  EXPECT_EQ(batch.input_ids[0][4].item<int64_t>(), 7);
}

TEST(Batcher, PadsToTheLongestRowAndMasksOnlyWhenSomethingIsPadded) {
  const EncodedDataset data = examples_of_lengths({3, 5, 5});
  BatcherOptions options;
  options.pad_id = 7;
  const Batcher batcher(data, options);
  const Batch padded = batcher.make_batch({0, 1});
  ASSERT_EQ(padded.input_ids.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(padded.input_ids[0][4].item<int64_t>(), 7);
  ASSERT_TRUE(padded.attention_mask.defined());
  EXPECT_EQ(padded.attention_mask.sum().item<int64_t>(), 8);
  EXPECT_EQ(padded.tokens, 8);
  EXPECT_EQ(padded.labels[1].item<int64_t>(), 1);
  const Batch even = batcher.make_batch({1, 2});
  EXPECT_FALSE(even.attention_mask.defined()) << "nothing padded: the fused kernels stay eligible";
}

// A process's share of a global batch keeps the whole batch's padding: its rows score as they do
// in the whole.
TEST(Batcher, ASliceOfABatchKeepsTheWholeBatchsPadding) {
  const EncodedDataset data = examples_of_lengths({6, 2, 3, 2});
  const Batcher batcher(data, BatcherOptions{});
  const Batch whole = batcher.make_batch({0, 1, 2, 3});
  const Batch share = whole.slice(2, 4);
  EXPECT_EQ(share.rows, (std::vector<size_t>{2, 3}));
  ASSERT_EQ(share.input_ids.sizes(), (std::vector<int64_t>{2, 6})) << "padded as the whole is";
  EXPECT_TRUE(torch::equal(share.input_ids, whole.input_ids.slice(0, 2, 4)));
  EXPECT_TRUE(torch::equal(share.attention_mask, whole.attention_mask.slice(0, 2, 4)));
  EXPECT_TRUE(torch::equal(share.labels, whole.labels.slice(0, 2, 4)));
  EXPECT_EQ(share.tokens, 5);
  EXPECT_EQ(whole.slice(0, 0).rows.size(), 0u) << "an empty share (more processes than rows)";
  EXPECT_ERROR_CONTAINS(whole.slice(3, 5), "rows [3, 5) are not in a batch of 4");
  EXPECT_ERROR_CONTAINS(whole.slice(2, 1), "rows [2, 1) are not in a batch of 4");
}

}  // namespace
}  // namespace adaptertune
