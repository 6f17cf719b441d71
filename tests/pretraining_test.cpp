#include "adaptertune/training/pretraining.h"

#include <unistd.h>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/text/wordpiece.h"
#include "test_util.h"

namespace adaptertune {
namespace {

const std::string kVocab =
    std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data/vocab/bert-base-uncased-vocab.txt";

TEST(MlmMasking, ChoosesFifteenPercentSplitEightyTenTenAndSkipsSpecials) {
  WordPieceTokenizer tokenizer(kVocab);
  torch::manual_seed(1);
  // [CLS] w ... w [SEP] [PAD] [PAD]: 200 rows of 64 tokens.
  auto ids = torch::randint(1000, 20000, {200, 64}, torch::kLong);
  ids.select(1, 0).fill_(tokenizer.cls_id());
  ids.select(1, 61).fill_(tokenizer.sep_id());
  ids.narrow(1, 62, 2).fill_(tokenizer.pad_id());
  auto [masked, labels] = mask_for_mlm(ids, tokenizer, MlmMaskingOptions{});
  auto chosen = labels != -100;
  const double share = chosen.sum().item<double>() / (200.0 * 60.0);
  EXPECT_NEAR(share, 0.15, 0.01);
  // Specials are never chosen and never changed.
  for (int64_t col : {0, 61, 62, 63}) {
    EXPECT_EQ(chosen.select(1, col).sum().item<int64_t>(), 0);
    EXPECT_TRUE(torch::equal(masked.select(1, col), ids.select(1, col)));
  }
  EXPECT_TRUE(torch::equal(labels.masked_select(chosen), ids.masked_select(chosen)));
  EXPECT_TRUE(torch::equal(masked.masked_select(~chosen), ids.masked_select(~chosen)));
  const double n = chosen.sum().item<double>();
  const double as_mask = ((masked == tokenizer.mask_id()) & chosen).sum().item<double>() / n;
  const double kept = ((masked == ids) & chosen).sum().item<double>() / n;
  EXPECT_NEAR(as_mask, 0.8, 0.03);
  EXPECT_NEAR(kept, 0.1, 0.03);  // (a random replacement rarely equals the original)
}

TEST(MlmMasking, WholeWordMaskingTakesContinuationsWithTheirWord) {
  WordPieceTokenizer tokenizer(kVocab);
  torch::manual_seed(2);
  // "una ##ffa ##ble" repeated: every chosen word has all three pieces chosen.
  std::vector<int64_t> row = {tokenizer.cls_id()};
  for (int i = 0; i < 40; ++i) {
    for (const char* t : {"una", "##ffa", "##ble"}) row.push_back(tokenizer.token_to_id(t));
  }
  row.push_back(tokenizer.sep_id());
  auto ids = torch::tensor(row, torch::kLong).unsqueeze(0).repeat({50, 1});
  MlmMaskingOptions options;
  options.whole_word_masking = true;
  auto labels = mask_for_mlm(ids, tokenizer, options).second;
  auto chosen = (labels != -100).narrow(1, 1, 120).reshape({50, 40, 3});
  EXPECT_TRUE(torch::equal(chosen.select(2, 0), chosen.select(2, 1)));
  EXPECT_TRUE(torch::equal(chosen.select(2, 0), chosen.select(2, 2)));
  EXPECT_GT(chosen.sum().item<int64_t>(), 0);
}

TEST(Pretraining, PacksSentencesAndWritesALoadableModel) {
  WordPieceTokenizer tokenizer(kVocab);
  auto packed = pack_sentences({"the cat sat .", "", "a dog ran away quickly .", "birds fly ."},
                               tokenizer, 12);
  ASSERT_EQ(packed.size(), 2u);
  EXPECT_EQ(packed[0].tokens,
            (std::vector<std::string>{"[CLS]", "the", "cat", "sat", ".", "[SEP]"}));
  EXPECT_EQ(packed[1].tokens.front(), "[CLS]");
  EXPECT_EQ(packed[1].tokens.size(), 12u);  // "a dog ran away quickly ." [SEP] "birds fly ." [SEP]

  BertConfig config = testing::tiny_config();
  config.vocab_size = tokenizer.vocab_size();
  PretrainOptions options;
  options.steps = 3;
  options.batch_size = 4;
  options.max_length = 16;
  int64_t logged = 0;
  options.log_every = 1;
  options.on_log = [&](int64_t, double loss, double) {
    EXPECT_TRUE(std::isfinite(loss));
    ++logged;
  };
  const std::string dir =
      ::testing::TempDir() + "adaptertune_pretrain_" + std::to_string(::getpid());
  remove_tree(dir);
  std::vector<std::string> lines(40, "the quick brown fox jumps over the lazy dog .");
  pretrain_mlm(config, lines, tokenizer, kVocab, dir, options);
  EXPECT_EQ(logged, 3);
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}) {
    EXPECT_TRUE(file_exists(dir + "/" + f)) << f;
  }
  LoadReport report;
  load_bert_model(dir, &report);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"pooler.dense.weight", "pooler.dense.bias"}));
  config.vocab_size = 100;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, kVocab, dir, options),
                        "the tokenizer has 30522 tokens but the model config's vocab_size is 100");
}

}  // namespace
}  // namespace adaptertune
