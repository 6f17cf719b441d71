#include "training/frozen_layer_cache.h"

#include <torch/torch.h>

#include <vector>

#include "adaptertune/bert_model.h"
#include "adaptertune/tasks/batcher.h"
#include "test_util.h"

namespace adaptertune {
namespace {

// Five examples of different lengths, so that batches pad some of them.
EncodedDataset five_examples() {
  EncodedDataset data;
  for (int64_t length : {5, 9, 3, 7, 9}) {
    Encoding e;
    for (int64_t t = 0; t < length; ++t) {
      e.input_ids.push_back(10 + (t * 7 + length) % 80);
      e.token_type_ids.push_back(t < length / 2 ? 0 : 1);
      e.attention_mask.push_back(1);
    }
    data.encodings.push_back(e);
  }
  return data;
}

// The cache gives each batch what the layers compute for it whole, at its real tokens (rows kept
// without padding) or at every position (rows kept at the longest length), computing only the
// rows it lacks: a batch that shares rows with earlier ones computes the others alone.
TEST(FrozenLayerCache, GivesWhatTheLayersComputeAndComputesOnlyTheRowsItLacks) {
  torch::manual_seed(5);
  BertConfig config = testing::tiny_config_without_dropout();
  config.vocab_size = 100;
  config.num_hidden_layers = 3;
  BertModel bert(config);
  bert->eval();
  const EncodedDataset data = five_examples();
  BatcherOptions batching;
  batching.shuffle = false;
  batching.pad_id = 0;
  const Batcher batcher(data, batching);
  for (const int64_t padded_length : {int64_t{0}, int64_t{9}}) {
    detail::FrozenLayerCache cache(2, data.encodings.size(), padded_length, /*pad_id=*/0);
    const std::vector<std::vector<size_t>> batches = {{0, 1}, {1, 2}, {3, 2, 0}, {2, 0, 1}};
    const std::vector<int64_t> computed_after = {2, 3, 4, 4};
    for (size_t b = 0; b < batches.size(); ++b) {
      const Batch batch = batcher.make_batch(batches[b]);
      torch::Tensor expected;
      {
        torch::NoGradGuard no_grad;
        expected = bert->lower_hidden_states(batch.input_ids, batch.attention_mask,
                                             batch.token_type_ids, 2);
      }
      const torch::Tensor got = cache.lower_states(*bert, batch);
      ASSERT_EQ(got.sizes(), expected.sizes());
      for (size_t i = 0; i < batches[b].size(); ++i) {
        const auto r = static_cast<int64_t>(i);
        // Rows kept without padding give zeros at padded positions; those kept at the longest
        // length give what the layers compute there too.
        const int64_t length =
            padded_length > 0
                ? batch.input_ids.size(1)
                : static_cast<int64_t>(data.encodings[batches[b][i]].input_ids.size());
        EXPECT_LT(
            testing::max_abs_diff(got[r].narrow(0, 0, length), expected[r].narrow(0, 0, length)),
            1e-5)
            << "padded_length " << padded_length << ", batch " << b << ", row " << i;
      }
      EXPECT_EQ(cache.rows_computed(), computed_after[b]) << "padded_length " << padded_length;
    }
    EXPECT_EQ(cache.batches_from_cache(), 1) << "the last batch only";
  }
}

// The training cache is kept whenever it fits the cap, the dev set's only beside it: a dev set
// that does not fit is evaluated without the cache rather than costing the training its.
TEST(FrozenLayerCache, PlanKeepsTheTrainingCacheBeforeTheDevSets) {
  const int64_t per_token = 256 * 4;  // hidden size 256, float32
  const detail::FrozenLayerCachePlan both =
      detail::plan_frozen_layer_caches(3, 1000, 100, 256, 1100 * per_token);
  EXPECT_EQ(both.training, 3);
  EXPECT_EQ(both.dev, 3);
  EXPECT_TRUE(both.message.empty()) << both.message;
  const detail::FrozenLayerCachePlan training_only =
      detail::plan_frozen_layer_caches(3, 1000, 100, 256, 1099 * per_token);
  EXPECT_EQ(training_only.training, 3);
  EXPECT_EQ(training_only.dev, 0);
  EXPECT_NE(training_only.message.find("with the dev set's, more than cache_max_bytes; "
                                       "evaluating without it"),
            std::string::npos)
      << training_only.message;
  const detail::FrozenLayerCachePlan none =
      detail::plan_frozen_layer_caches(3, 1000, 100, 256, 999 * per_token);
  EXPECT_EQ(none.training, 0);
  EXPECT_EQ(none.dev, 0);
  EXPECT_NE(none.message.find("more than cache_max_bytes; training without it"), std::string::npos)
      << none.message;
}

}  // namespace
}  // namespace adaptertune
