#include "dynamic_batcher.h"

#include <unistd.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/text/wordpiece.h"
#include "test_util.h"

namespace adaptertune::serve {
namespace {

const std::string kData = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";

// A tiny base with the BERT vocabulary and one pack ("sentiment"), written once.
const std::pair<std::string, std::string>& model_and_pack() {
  static const std::pair<std::string, std::string> files = [] {
    const std::string root =
        ::testing::TempDir() + "adaptertune_batcher_" + std::to_string(::getpid());
    remove_tree(root);
    torch::manual_seed(3);
    BertConfig config = testing::tiny_config();
    config.vocab_size = 30522;
    BertForSequenceClassification model(config, HeadConfig::classification({"no", "yes"}));
    save_pretrained(*model, root + "/base");
    save_tokenizer(WordPieceTokenizer(kData + "/vocab/bert-base-uncased-vocab.txt"),
                   root + "/base");
    model->add_task("sentiment", AdapterConfig::houlsby(), HeadConfig::classification({"n", "p"}));
    save_adapter_pack(model, "sentiment", root + "/sentiment");
    return std::make_pair(root + "/base", root + "/sentiment");
  }();
  return files;
}

std::vector<TaskRequest> requests_for(int i) {
  return {{"sentiment", "request number " + std::to_string(i), std::nullopt},
          {std::nullopt, "and the base " + std::to_string(i), std::nullopt}};
}

TEST(DynamicBatcher, ConcurrentRequestsRunTogetherAndEachGetsItsOwnAnswers) {
  const Predictor predictor(model_and_pack().first, {model_and_pack().second});
  std::atomic<int64_t> batches{0}, largest{0};
  DynamicBatcherOptions options;
  options.max_batch = 8;
  options.max_wait = std::chrono::milliseconds(50);
  DynamicBatcher batcher(predictor, options, [&](int64_t n) {
    ++batches;
    int64_t seen = largest;
    while (n > seen && !largest.compare_exchange_weak(seen, n)) {
    }
  });
  constexpr int kThreads = 12;
  std::vector<std::vector<Prediction>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { got[size_t(t)] = batcher.submit(requests_for(t))->get(); });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    const std::vector<Prediction> alone = predictor.predict(requests_for(t));
    ASSERT_EQ(got[size_t(t)].size(), alone.size());
    for (size_t i = 0; i < alone.size(); ++i) {
      EXPECT_EQ(got[size_t(t)][i].task, alone[i].task);
      for (size_t j = 0; j < alone[i].logits.size(); ++j) {
        EXPECT_NEAR(got[size_t(t)][i].logits[j], alone[i].logits[j], 1e-5) << t << " " << i;
      }
    }
  }
  EXPECT_LE(largest.load(), 8);
  EXPECT_GT(largest.load(), 2) << "no two requests ran together";
  EXPECT_LT(batches.load(), kThreads);
  EXPECT_EQ(batcher.queue_depth(), 0);
}

TEST(DynamicBatcher, OnlyTheRequestAtFaultGetsTheError) {
  const Predictor predictor(model_and_pack().first, {model_and_pack().second});
  DynamicBatcherOptions options;
  options.max_wait = std::chrono::milliseconds(100);
  DynamicBatcher batcher(predictor, options);
  auto good = batcher.submit(requests_for(1));
  auto bad = batcher.submit({{"no-such-task", "x", std::nullopt}});
  auto also_good = batcher.submit(requests_for(2));
  EXPECT_EQ(good->get().size(), 2u);
  EXPECT_THROW(bad->get(), Error);
  EXPECT_EQ(also_good->get().size(), 2u);
}

TEST(DynamicBatcher, AFullQueueRefusesAndTheDestructorAnswersWhatWaits) {
  const Predictor predictor(model_and_pack().first, {model_and_pack().second});
  std::optional<std::future<std::vector<Prediction>>> first;
  {
    DynamicBatcherOptions options;
    options.max_queue = 3;
    options.max_batch = 64;
    options.max_wait = std::chrono::milliseconds(2000);
    DynamicBatcher batcher(predictor, options);
    first = batcher.submit(requests_for(1));  // 2 examples wait (for up to 2 s)
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(batcher.queue_depth(), 2);
    EXPECT_FALSE(batcher.submit(requests_for(2)).has_value());  // 4 > 3
    EXPECT_TRUE(batcher.submit({{"sentiment", "one more", std::nullopt}}).has_value());
  }  // stops without waiting out the 2 s, answering what was queued
  EXPECT_EQ(first->wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(first->get().size(), 2u);
}

}  // namespace
}  // namespace adaptertune::serve
