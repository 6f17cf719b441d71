#include "adaptertune/training/pretraining.h"

#include <cmath>
#include <functional>
#include <map>
#include <sstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/directory_lock.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/safetensors.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/text/wordpiece.h"
#include "adaptertune/training/interrupt.h"
#include "test_util.h"

namespace adaptertune {
namespace {

const std::string kVocab =
    std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data/vocab/bert-base-uncased-vocab.txt";

// The tiny test model, with the vocabulary of `tokenizer`.
BertConfig tiny_config_for(const Tokenizer& tokenizer) {
  BertConfig config = testing::tiny_config();
  config.vocab_size = tokenizer.vocab_size();
  return config;
}

// Ten lines that differ in their last word: with batches of four, an epoch of three batches.
std::vector<std::string> numbered_lines() {
  std::vector<std::string> lines;
  for (int i = 0; i < 10; ++i)
    lines.push_back("the quick brown fox jumps over the lazy dog number " + std::to_string(i));
  return lines;
}

// Pretraining options for `steps` steps of 4 sequences of 16 tokens.
PretrainOptions few_steps(int64_t steps) {
  PretrainOptions options;
  options.steps = steps;
  options.batch_size = 4;
  options.max_length = 16;
  return options;
}

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

  BertConfig config = tiny_config_for(tokenizer);
  PretrainOptions options = few_steps(3);
  std::vector<PretrainLogEntry> logged;
  options.log_every = 1;
  options.on_log = [&](const PretrainLogEntry& entry) { logged.push_back(entry); };
  const std::string dir = testing::fresh_dir("pretrain");
  std::vector<std::string> lines(40, "the quick brown fox jumps over the lazy dog .");
  pretrain_mlm(config, lines, tokenizer, dir, options);
  ASSERT_EQ(logged.size(), 3u);
  for (size_t i = 0; i < logged.size(); ++i) {
    const PretrainLogEntry& entry = logged[i];
    EXPECT_EQ(entry.step, static_cast<int64_t>(i) + 1);
    EXPECT_TRUE(std::isfinite(entry.loss) && entry.loss > 0) << entry.step;
    EXPECT_GT(entry.lr, 0) << entry.step;
    EXPECT_GT(entry.examples_per_second, 0) << entry.step;
    // fp32 scales nothing.
    EXPECT_EQ(entry.loss_scale, 0) << entry.step;
    EXPECT_EQ(entry.skipped_steps, 0) << entry.step;
  }
  // Time left: two steps' worth after the first, none after the last.
  EXPECT_NEAR(
      logged[0].seconds_left,
      2.0 * options.batch_size * options.gradient_accumulation / logged[0].examples_per_second,
      1e-9 * logged[0].seconds_left + 1e-12);
  EXPECT_GT(logged[1].seconds_left, 0);
  EXPECT_EQ(logged[2].seconds_left, 0);
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"}) {
    EXPECT_TRUE(file_exists(dir + "/" + f)) << f;
  }
  LoadReport report;
  load_bert_model(dir, &report);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"pooler.dense.weight", "pooler.dense.bias"}));
  config.vocab_size = 100;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "the tokenizer has 30522 tokens but the model config's vocab_size is 100");
}

// On every device: the masking is drawn on the CPU, dropout on the device's generator.
class PretrainingOnDeviceTest : public testing::DeviceTest {};
ADAPTERTUNE_INSTANTIATE_DEVICE_TEST(PretrainingOnDeviceTest);

TEST_P(PretrainingOnDeviceTest, InterruptedAndResumedRunEndsWithTheSameWeights) {
  WordPieceTokenizer tokenizer(kVocab);
  BertConfig config = tiny_config_for(tokenizer);
  // Ten sequences in batches of four: three batches an epoch, so six steps cross two epoch ends.
  const std::vector<std::string> lines = numbered_lines();
  // Alone, and with two batches a step (an epoch's third batch then ends a step of its own).
  for (int64_t accumulation : {1, 2}) {
    SCOPED_TRACE("gradient_accumulation " + std::to_string(accumulation));
    PretrainOptions options;
    options.steps = 6;
    options.batch_size = 4;
    options.max_length = 16;
    options.checkpoint_every = 2;
    options.gradient_accumulation = accumulation;
    options.device = device();
    // Measured along the way, as a run with --eval-text is (on the device too).
    options.eval_lines = {"a lazy dog sleeps in the sun", "the brown fox runs over the hill"};
    options.eval_every = 2;
    options.log_every = 1;
    const std::string root = ::testing::TempDir() + "adaptertune_pretrain_resume_" +
                             std::to_string(::getpid()) + "_" + std::to_string(accumulation);
    remove_tree(root);

    PretrainResult whole = pretrain_mlm(config, lines, tokenizer, root + "/whole", options);
    EXPECT_EQ(whole.steps, 6);
    EXPECT_FALSE(whole.interrupted);
    EXPECT_FALSE(file_exists(root + "/whole/checkpoints/latest")) << "removed once finished";

    // Stopped at step 3 (with one batch a step, an epoch's end), resumed and stopped at 4, resumed
    // to the end.
    const std::string dir = root + "/resumed";
    std::vector<std::string> messages;
    options.on_message = [&](const std::string& text) { messages.push_back(text); };
    for (int64_t stop_at : {3, 4}) {
      options.on_step = [stop_at](int64_t step) {
        if (step == stop_at) stop_requested() = true;
      };
      PretrainResult part = pretrain_mlm(config, lines, tokenizer, dir, options);
      EXPECT_TRUE(part.interrupted);
      EXPECT_EQ(part.steps, stop_at);
      EXPECT_FALSE(file_exists(dir + "/model.safetensors")) << "no model from an unfinished run";
      options.resume = true;
    }
    options.on_step = nullptr;
    PretrainResult rest = pretrain_mlm(config, lines, tokenizer, dir, options);
    EXPECT_FALSE(rest.interrupted);
    EXPECT_EQ(rest.steps, 6);
    ASSERT_TRUE(whole.eval_loss && rest.eval_loss);
    EXPECT_TRUE(std::isfinite(*whole.eval_loss));
    EXPECT_NEAR(*rest.eval_loss, *whole.eval_loss, device().is_cpu() ? 0.0 : 1e-4);
    ASSERT_GE(messages.size(), 3u);
    EXPECT_NE(messages.back().find("resumed from " + dir + "/checkpoints/checkpoint-4 at step 4"),
              std::string::npos)
        << messages.back();

    // metrics.jsonl: every step and measurement once, as the uninterrupted run logs them, with
    // the two resumes where they happened.
    const auto events = [](const std::string& run_dir) {
      std::vector<nlohmann::json> out;
      std::istringstream lines(read_file(run_dir + "/metrics.jsonl"));
      for (std::string line; std::getline(lines, line);) out.push_back(nlohmann::json::parse(line));
      return out;
    };
    const std::vector<nlohmann::json> whole_events = events(root + "/whole");
    std::vector<nlohmann::json> resumed_events = events(dir);
    std::vector<int64_t> resumes;
    for (auto it = resumed_events.begin(); it != resumed_events.end();) {
      if (it->at("event") == "resume") {
        resumes.push_back(it->at("step"));
        it = resumed_events.erase(it);
      } else {
        ++it;
      }
    }
    EXPECT_EQ(resumes, (std::vector<int64_t>{3, 4}));
    ASSERT_EQ(whole_events.size(), 9u);  // six steps, three measurements
    ASSERT_EQ(resumed_events.size(), whole_events.size());
    for (size_t i = 0; i < whole_events.size(); ++i) {
      const nlohmann::json &a = whole_events[i], &b = resumed_events[i];
      EXPECT_EQ(a.at("event"), b.at("event")) << i;
      EXPECT_EQ(a.at("step"), b.at("step")) << i;
      const char* key = a.at("event") == "train" ? "loss" : "held_out_loss";
      EXPECT_NEAR(a.at(key).get<double>(), b.at(key).get<double>(), device().is_cpu() ? 0.0 : 1e-4)
          << a << " " << b;
    }

    auto expected = load_safetensors(root + "/whole/model.safetensors");
    auto actual = load_safetensors(dir + "/model.safetensors");
    ASSERT_EQ(actual.size(), expected.size());
    for (size_t i = 0; i < actual.size(); ++i) {
      EXPECT_EQ(actual[i].first, expected[i].first);
      EXPECT_TRUE(testing::same_weights_on(device(), actual[i].second, expected[i].second))
          << actual[i].first;
    }
    remove_tree(root);
  }
}

TEST_P(PretrainingOnDeviceTest, Fp16PretrainsWithItsLossScaled) {
  if (device().is_cpu()) GTEST_SKIP() << "LibTorch's CPU autocast has no fp16";
  WordPieceTokenizer tokenizer(kVocab);
  const BertConfig config = tiny_config_for(tokenizer);
  PretrainOptions options = few_steps(6);
  options.device = device();
  options.precision = Precision::kFloat16;
  options.eval_lines = {"a lazy dog sleeps in the sun", "the brown fox runs over the hill"};
  const std::string root = testing::fresh_dir("pretrain_fp16");
  options.log_every = 1;
  std::vector<PretrainLogEntry> logged;
  options.on_log = [&](const PretrainLogEntry& entry) { logged.push_back(entry); };
  const PretrainResult result = pretrain_mlm(config, numbered_lines(), tokenizer, root, options);
  ASSERT_EQ(logged.size(), 6u);
  EXPECT_GT(logged.back().loss_scale, 0) << "fp16's log shows its loss scale";
  EXPECT_EQ(logged.back().skipped_steps, result.skipped_steps);
  EXPECT_EQ(result.steps, 6);
  EXPECT_LT(result.skipped_steps, 6) << "an overflow at 2^16 may skip a step, not every one";
  ASSERT_TRUE(result.eval_loss);
  EXPECT_TRUE(std::isfinite(*result.eval_loss) && std::isfinite(result.final_loss));
  for (const auto& [name, value] : load_safetensors(root + "/model.safetensors")) {
    EXPECT_TRUE(value.isfinite().all().item<bool>()) << name;
  }
  remove_tree(root);
}

// Gradient checkpointing and the recomputed attention probabilities, as fine-tuning has them:
// wired through (backward runs more operators) and the same weights as a run without.
TEST(Pretraining, RecomputingInBackwardRunsMoreAndTrainsTheSameWeights) {
  WordPieceTokenizer tokenizer(kVocab);
  const BertConfig config = tiny_config_for(tokenizer);  // with dropout
  const std::vector<std::string> lines = numbered_lines();
  const std::string root = testing::fresh_dir("pretrain_recompute");
  std::map<std::string, size_t> events;
  const auto run = [&](const std::string& name, const std::function<void(PretrainOptions&)>& set) {
    PretrainOptions options = few_steps(4);
    set(options);
    events[name] = testing::names_recorded_by([&] {
                     pretrain_mlm(config, lines, tokenizer, root + "/" + name, options);
                   }).size();
    return load_safetensors(root + "/" + name + "/model.safetensors");
  };
  const auto plain = run("plain", [](PretrainOptions&) {});
  const auto checkpointed =
      run("checkpointed", [](PretrainOptions& o) { o.gradient_checkpointing = true; });
  const auto recomputed =
      run("recomputed", [](PretrainOptions& o) { o.recompute_attention_probabilities = true; });
  // Backward runs the layers (or the attention's probabilities) again: more operators…
  EXPECT_GT(events["checkpointed"], events["plain"]);
  EXPECT_GT(events["recomputed"], events["plain"]);
  // …with the same dropout masks, so the same weights up to float rounding.
  for (const auto* other : {&checkpointed, &recomputed}) {
    ASSERT_EQ(other->size(), plain.size());
    for (size_t i = 0; i < plain.size(); ++i) {
      EXPECT_EQ((*other)[i].first, plain[i].first);
      EXPECT_LE(testing::max_abs_diff((*other)[i].second, plain[i].second), 1e-5) << plain[i].first;
    }
  }
  remove_tree(root);
}

// The held-out loss is measured on a masking drawn once, and measuring it changes nothing of the
// training: the weights equal those of a run without it, and two runs measure the same losses.
TEST(Pretraining, HeldOutLossIsMeasuredWithoutChangingTheTraining) {
  WordPieceTokenizer tokenizer(kVocab);
  BertConfig config = tiny_config_for(tokenizer);
  const std::vector<std::string> lines = numbered_lines();
  PretrainOptions options = few_steps(6);
  const std::string root = testing::fresh_dir("pretrain_heldout");
  const PretrainResult plain = pretrain_mlm(config, lines, tokenizer, root + "/plain", options);
  EXPECT_FALSE(plain.eval_loss);

  options.eval_lines = {"a lazy dog sleeps in the sun", "the brown fox runs over the hill"};
  options.eval_every = 2;
  std::vector<std::pair<int64_t, double>> first, second;
  options.on_eval = [&](int64_t step, double loss) { first.emplace_back(step, loss); };
  const PretrainResult measured = pretrain_mlm(config, lines, tokenizer, root + "/a", options);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].first, 2);
  EXPECT_EQ(first[2].first, 6);
  for (const auto& [step, loss] : first) EXPECT_TRUE(std::isfinite(loss) && loss > 0) << step;
  ASSERT_TRUE(measured.eval_loss);
  EXPECT_EQ(*measured.eval_loss, first.back().second);
  EXPECT_EQ(read_file(root + "/a/model.safetensors"), read_file(root + "/plain/model.safetensors"));
  options.on_eval = [&](int64_t step, double loss) { second.emplace_back(step, loss); };
  pretrain_mlm(config, lines, tokenizer, root + "/b", options);
  EXPECT_EQ(first, second);

  options.eval_lines = {"\x01"};
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, root + "/c", options),
                        "the held-out text holds no tokens");
  // A refused run leaves nothing behind, not even an empty metrics.jsonl.
  EXPECT_NE(::access((root + "/c").c_str(), F_OK), 0);
  remove_tree(root);
}

// The held-out text is masked by `eval_masking` (BERT's 15 %), not by the training's masking, so
// that runs training with different masking rates measure the same thing. With a learning rate
// too small to move a float32 weight, the held-out loss is that of the initial model: equal for
// two training masking rates, and different when the held-out masking itself changes.
TEST(Pretraining, HeldOutMaskingDoesNotFollowTheTrainingMasking) {
  WordPieceTokenizer tokenizer(kVocab);
  BertConfig config = tiny_config_for(tokenizer);
  const std::vector<std::string> lines(8, "the quick brown fox jumps over the lazy dog");
  PretrainOptions options = few_steps(1);
  options.lr = 1e-20;
  options.eval_lines = {"a lazy dog sleeps in the sun and the brown fox runs over the hill",
                        "every good boy deserves fudge while the cat sat on the mat"};
  const std::string root = testing::fresh_dir("pretrain_evalmask");
  const auto held_out_loss = [&](const std::string& name) {
    return *pretrain_mlm(config, lines, tokenizer, root + "/" + name, options).eval_loss;
  };
  EXPECT_DOUBLE_EQ(options.eval_masking.mask_probability, 0.15);
  const double standard = held_out_loss("standard");
  options.masking.mask_probability = 0.4;
  EXPECT_NEAR(held_out_loss("train40"), standard, 1e-6);
  options.eval_masking.mask_probability = 0.4;
  EXPECT_GT(std::abs(held_out_loss("eval40") - standard), 1e-4);
  options.eval_masking.mask_probability = 1.0;
  EXPECT_ERROR_CONTAINS(options.validate(), "eval_masking.mask_probability must be in (0, 1)");
  options.eval_masking.mask_probability = 0.15;
  options.precision = Precision::kFloat16;  // on the CPU: refused before anything is written
  EXPECT_ERROR_CONTAINS(options.validate(), "precision fp16 is not supported on the CPU");
  remove_tree(root);
}

TEST(Pretraining, AnExistingModelIsReplacedOnlyWhenAskedTo) {
  WordPieceTokenizer tokenizer(kVocab);
  BertConfig config = tiny_config_for(tokenizer);
  const std::vector<std::string> lines(8, "the quick brown fox jumps over the lazy dog");
  PretrainOptions options = few_steps(2);
  const std::string dir = testing::fresh_dir("pretrain_overwrite");
  pretrain_mlm(config, lines, tokenizer, dir, options);
  const std::string weights = read_file(dir + "/model.safetensors");

  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "the model directory exists");
  options.resume = true;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "holds a finished model and no checkpoint to resume");
  EXPECT_EQ(read_file(dir + "/model.safetensors"), weights);
  options.resume = false;
  options.max_length = config.max_position_embeddings + 1;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "max_length 65 is more than the model's max_position_embeddings (64)");
  options.max_length = 16;
  options.overwrite = true;
  options.seed = 43;
  {
    // Another run writing the directory holds its lock: this one neither clears nor writes it.
    const DirectoryLock other_run(dir, "model directory");
    EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                          "model directory " + dir + " is being written by another run");
    EXPECT_EQ(read_file(dir + "/model.safetensors"), weights);
  }
  pretrain_mlm(config, lines, tokenizer, dir, options);
  EXPECT_NE(read_file(dir + "/model.safetensors"), weights);
  options.inputs = {dir + "/vocab.txt"};
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options), "holds an input");
  options.inputs.clear();
  // A model's readme and licence stay in place when it is replaced; anything else stops the run.
  write_file_atomic(dir + "/README.md", "my notes\n");
  write_file_atomic(dir + "/LICENSE", "my licence\n");
  pretrain_mlm(config, lines, tokenizer, dir, options);
  EXPECT_EQ(read_file(dir + "/README.md"), "my notes\n");
  EXPECT_EQ(read_file(dir + "/LICENSE"), "my licence\n");
  write_file_atomic(dir + "/notes.txt", "other notes\n");
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "holds \"notes.txt\", which is not part of a model directory");
  EXPECT_TRUE(file_exists(dir + "/model.safetensors"));
  remove_tree(dir);
}

TEST(Pretraining, ResumeRefusesACheckpointOfOtherOptions) {
  WordPieceTokenizer tokenizer(kVocab);
  BertConfig config = tiny_config_for(tokenizer);
  std::vector<std::string> lines(12, "a short line of text .");
  PretrainOptions options = few_steps(4);
  options.on_step = [](int64_t step) {
    if (step == 2) stop_requested() = true;
  };
  const std::string dir = testing::fresh_dir("pretrain_refuse");
  ASSERT_TRUE(pretrain_mlm(config, lines, tokenizer, dir, options).interrupted);
  options.on_step = nullptr;
  options.resume = true;
  options.batch_size = 2;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "checkpoint-2/trainer_state.json: key 'extra': the checkpoint was made "
                        "with batch_size 4, this run has 2");
  options.batch_size = 4;
  options.gradient_accumulation = 2;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "the checkpoint was made with gradient_accumulation 1, this run has 2");
  options.gradient_accumulation = 1;
  options.batch_size = 4;
  lines.back() = "a short line of other text .";  // same amount of text, other words
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "made with text_sha256 \"");
  EXPECT_TRUE(file_exists(dir + "/checkpoints/checkpoint-2/trainer_state.json"));
}

// Reads a model directory's tensors by name, in float32.
std::map<std::string, at::Tensor> weights_of(const std::string& dir) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, tensor] : load_safetensors(dir + "/model.safetensors")) {
    out[name] = tensor.to(at::kFloat);
  }
  return out;
}

TEST(Pretraining, WritesTheMaskedLmHeadInHuggingFacesLayout) {
  WordPieceTokenizer tokenizer(kVocab);
  const BertConfig config = tiny_config_for(tokenizer);
  const std::string dir = testing::fresh_dir("pretrain_layout");
  pretrain_mlm(config, std::vector<std::string>(20, "the cat sat on the mat ."), tokenizer, dir,
               few_steps(1));
  const auto weights = weights_of(dir);
  for (const char* name :
       {"bert.embeddings.word_embeddings.weight",
        "bert.encoder.layer.0.attention.self.query.weight", "cls.predictions.bias",
        "cls.predictions.transform.dense.weight", "cls.predictions.transform.LayerNorm.weight"}) {
    EXPECT_EQ(weights.count(name), 1u) << name;
  }
  // The decoder is the word embedding matrix (tied), so it is not stored twice.
  EXPECT_EQ(weights.count("cls.predictions.decoder.weight"), 0u);
  EXPECT_NE(read_file(dir + "/config.json").find("\"BertForMaskedLM\""), std::string::npos);
  // Loaders of a base model take the `bert.` tensors and skip the head.
  LoadReport report;
  load_bert_model(dir, &report);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"pooler.dense.weight", "pooler.dense.bias"}));
  EXPECT_TRUE(report.unexpected.empty());
  EXPECT_EQ(report.ignored.size(), 5u);  // cls.predictions: bias, transform dense and LayerNorm
  remove_tree(dir);
}

TEST(Pretraining, ContinuesFromAModelDirectory) {
  WordPieceTokenizer tokenizer(kVocab);
  const BertConfig config = tiny_config_for(tokenizer);
  const std::vector<std::string> lines(20, "the quick brown fox jumps over the lazy dog .");
  const std::string root = testing::fresh_dir("pretrain_continue");
  const std::string first = root + "/first", second = root + "/second", fresh = root + "/fresh";
  pretrain_mlm(config, lines, tokenizer, first, few_steps(3));

  // A step too small to move anything: the continued run ends where the model it started from
  // ended, head included, while a run from random weights with the same seed does not.
  PretrainOptions options = few_steps(1);
  options.lr = 1e-12;
  options.weight_decay = 0;
  std::vector<std::string> messages;
  options.on_message = [&](const std::string& text) { messages.push_back(text); };
  options.init_from = first;
  pretrain_mlm(config, lines, tokenizer, second, options);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("starting from the weights of " + first), std::string::npos);
  EXPECT_EQ(messages[0].find("head is new"), std::string::npos) << messages[0];
  options.init_from.clear();
  pretrain_mlm(config, lines, tokenizer, fresh, options);
  const auto before = weights_of(first), after = weights_of(second), random = weights_of(fresh);
  ASSERT_EQ(after.size(), before.size());
  for (const auto& [name, tensor] : before) {
    EXPECT_TRUE(at::allclose(after.at(name), tensor, 0, 1e-6)) << name;
  }
  EXPECT_FALSE(at::allclose(random.at("bert.encoder.layer.0.attention.self.query.weight"),
                            before.at("bert.encoder.layer.0.attention.self.query.weight")));

  // A base without a masked-LM head gets a new one.
  const std::string base_only = root + "/base";
  save_pretrained(*load_bert_model(first), base_only);
  messages.clear();
  options.init_from = base_only;
  options.overwrite = true;
  pretrain_mlm(config, lines, tokenizer, second, options);
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("the masked-LM head is new"), std::string::npos) << messages[0];

  // Dropout may differ; the architecture may not; the model it starts from is never replaced.
  BertConfig no_dropout = config;
  no_dropout.hidden_dropout_prob = 0;
  no_dropout.attention_probs_dropout_prob = 0;
  options.init_from = first;
  pretrain_mlm(no_dropout, lines, tokenizer, second, options);
  BertConfig other_heads = config;
  other_heads.num_attention_heads = config.num_attention_heads / 2;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(other_heads, lines, tokenizer, second, options),
                        first + "/config.json: describes another architecture");
  const std::string weights = read_file(first + "/model.safetensors");
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, first, options), "holds an input");
  EXPECT_EQ(read_file(first + "/model.safetensors"), weights);
  options.init_from = root + "/missing";
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, second, options),
                        root + "/missing/config.json");
  remove_tree(root);
}

// A continuation's log starts with the held-out loss of the model it continues, and its
// checkpoints resume only as a continuation of that same model.
TEST(Pretraining, AContinuationIsMeasuredAtStepZeroAndResumesOnlyFromItsModel) {
  WordPieceTokenizer tokenizer(kVocab);
  const BertConfig config = tiny_config_for(tokenizer);
  const std::vector<std::string> lines(20, "the quick brown fox jumps over the lazy dog .");
  const std::string root = testing::fresh_dir("pretrain_continue_eval");
  const std::string first = root + "/first", other = root + "/other";
  pretrain_mlm(config, lines, tokenizer, first, few_steps(2));
  PretrainOptions other_seed = few_steps(2);
  other_seed.seed = 7;
  pretrain_mlm(config, lines, tokenizer, other, other_seed);

  PretrainOptions options = few_steps(2);
  options.eval_lines = {"the lazy dog jumps over the quick brown fox ."};
  std::vector<int64_t> measured_at;
  options.on_eval = [&](int64_t step, double) { measured_at.push_back(step); };
  options.init_from = first;
  options.checkpoint_dir = root + "/checkpoints";  // kept after the run: one at step 1
  options.checkpoint_every = 1;
  pretrain_mlm(config, lines, tokenizer, root + "/continued", options);
  EXPECT_EQ(measured_at, (std::vector<int64_t>{0, 2}));
  // Without init_from a run from random weights is measured only at the end.
  options.init_from.clear();
  options.checkpoint_dir.clear();
  measured_at.clear();
  pretrain_mlm(config, lines, tokenizer, root + "/fresh", options);
  EXPECT_EQ(measured_at, std::vector<int64_t>{2});

  // Resuming the continuation's checkpoint from another model, or from none, is refused; from
  // the same model it resumes at step 1 (and is not measured at step 0 again).
  options.checkpoint_dir = root + "/checkpoints";
  options.resume = true;
  options.init_from = other;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, root + "/resumed", options),
                        "the checkpoint was made with init_from_weights \"");
  options.init_from.clear();
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, root + "/resumed", options),
                        "this run has null");
  options.init_from = first;
  measured_at.clear();
  std::vector<std::string> messages;
  options.on_message = [&](const std::string& text) { messages.push_back(text); };
  pretrain_mlm(config, lines, tokenizer, root + "/resumed", options);
  ASSERT_FALSE(messages.empty());
  EXPECT_NE(messages.front().find("at step 1"), std::string::npos) << messages.front();
  EXPECT_EQ(measured_at, std::vector<int64_t>{2});
  remove_tree(root);
}

// Expects the model directories `a` and `b` to hold the same tensors, bit for bit.
void expect_same_weights(const std::string& a, const std::string& b) {
  const auto expected = weights_of(a), actual = weights_of(b);
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    EXPECT_TRUE(torch::equal(actual.at(name), tensor)) << name;
  }
}

// stop_after_step ends a run where Ctrl-C would, but at a step named in advance: a checkpoint
// there (also when it falls on a periodic one), no model, and a resume that finishes as the
// uninterrupted run does.
TEST(Pretraining, StopsAfterTheStepAskedAndResumesToTheSameWeights) {
  WordPieceTokenizer tokenizer(kVocab);
  const BertConfig config = tiny_config_for(tokenizer);
  const std::vector<std::string> lines = numbered_lines();
  const std::string root = testing::fresh_dir("pretrain_stop");
  PretrainOptions options = few_steps(6);
  options.checkpoint_every = 2;
  options.keep_checkpoints = 5;
  pretrain_mlm(config, lines, tokenizer, root + "/whole", options);

  const std::string dir = root + "/stopped";
  std::vector<std::string> messages;
  options.on_message = [&](const std::string& text) { messages.push_back(text); };
  for (int64_t stop_after : {3, 4}) {
    SCOPED_TRACE("stop_after_step " + std::to_string(stop_after));
    options.stop_after_step = stop_after;
    const PretrainResult part = pretrain_mlm(config, lines, tokenizer, dir, options);
    EXPECT_TRUE(part.stopped);
    EXPECT_FALSE(part.interrupted);
    EXPECT_TRUE(part.paused());
    EXPECT_EQ(part.steps, stop_after);
    EXPECT_FALSE(file_exists(dir + "/model.safetensors")) << "no model from an unfinished run";
    ASSERT_FALSE(messages.empty());
    EXPECT_NE(messages.back().find("stopped after step " + std::to_string(stop_after) +
                                   " as asked (stop_after_step); checkpoint saved in " + dir +
                                   "/checkpoints/checkpoint-" + std::to_string(stop_after)),
              std::string::npos)
        << messages.back();
    options.resume = true;
  }
  // Step 2 (periodic), 3 (the stop) and 4 (periodic and the stop).
  for (int step : {2, 3, 4}) {
    EXPECT_TRUE(file_exists(dir + "/checkpoints/checkpoint-" + std::to_string(step) +
                            "/trainer_state.json"))
        << step;
  }

  // A stop that the run has already passed is an error, not a silent full run.
  options.stop_after_step = 4;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "stop_after_step 4: the run continues from step 4, which is not before it");
  options.stop_after_step = 6;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, dir, options),
                        "stop_after_step must be less than steps (6), got 6");

  options.stop_after_step = 0;
  const PretrainResult rest = pretrain_mlm(config, lines, tokenizer, dir, options);
  EXPECT_FALSE(rest.stopped);
  EXPECT_FALSE(rest.paused());
  EXPECT_EQ(rest.steps, 6);
  expect_same_weights(root + "/whole", dir);
  remove_tree(root);
}

// A wsd run can be extended on resume, and a decay branched off its checkpoint ends exactly where
// a run of that length from the start ends: what a long pretraining run interrupted by sessions
// needs (models/README.md).
TEST(Pretraining, AWsdRunGrowsOnResumeAndADecayBranchedOffItEqualsAStraightRun) {
  WordPieceTokenizer tokenizer(kVocab);
  const BertConfig config = tiny_config_for(tokenizer);
  const std::vector<std::string> lines = numbered_lines();
  const std::string root = testing::fresh_dir("pretrain_wsd");
  const auto wsd = [](int64_t steps) {
    PretrainOptions options = few_steps(steps);
    options.schedule = ScheduleKind::kWarmupStableDecay;
    options.warmup_steps = 1;
    options.decay_steps = 2;
    options.checkpoint_every = 2;
    options.keep_checkpoints = 3;
    return options;
  };
  pretrain_mlm(config, lines, tokenizer, root + "/straight", wsd(6));

  // A long run at constant rate, stopped at step 4 (its decay would start at step 98).
  PretrainOptions long_run = wsd(100);
  long_run.stop_after_step = 4;
  ASSERT_TRUE(pretrain_mlm(config, lines, tokenizer, root + "/long", long_run).stopped);

  // A decay of 2 steps branched off its step 4: the 6-step run, bit for bit; the long run's
  // checkpoints stay as they were.
  PretrainOptions branch = wsd(6);
  branch.branch_from = root + "/long/checkpoints";
  std::vector<std::string> messages;
  branch.on_message = [&](const std::string& text) { messages.push_back(text); };
  pretrain_mlm(config, lines, tokenizer, root + "/branch", branch);
  ASSERT_FALSE(messages.empty());
  EXPECT_NE(messages.front().find("branched from " + root +
                                  "/long/checkpoints/checkpoint-4 at step 4 (wsd, peak 0.0005, "
                                  "warmup 1, decay 2 of 6 steps)"),
            std::string::npos)
      << messages.front();
  expect_same_weights(root + "/straight", root + "/branch");
  // Its log starts where it branched, naming the checkpoint (log_every 50: then the last step).
  const std::string log = read_file(root + "/branch/metrics.jsonl");
  EXPECT_EQ(
      log.substr(0, log.find('\n')),
      nlohmann::ordered_json(
          {{"event", "branch"}, {"step", 4}, {"from", root + "/long/checkpoints/checkpoint-4"}})
          .dump());
  EXPECT_TRUE(file_exists(root + "/long/checkpoints/checkpoint-4/trainer_state.json"));
  EXPECT_FALSE(file_exists(root + "/branch/checkpoints/latest")) << "its own, removed at the end";

  // The long run resumed with fewer steps, as long as its decay has not begun: 8 steps, decaying
  // from step 6, end as a straight 8-step run does.
  pretrain_mlm(config, lines, tokenizer, root + "/straight8", wsd(8));
  PretrainOptions shorter = wsd(8);
  shorter.resume = true;
  pretrain_mlm(config, lines, tokenizer, root + "/long", shorter);
  expect_same_weights(root + "/straight8", root + "/long");
  remove_tree(root);
}

TEST(Pretraining, ResumeRefusesASchedulesThatWouldChangeTheRatesTaken) {
  WordPieceTokenizer tokenizer(kVocab);
  const BertConfig config = tiny_config_for(tokenizer);
  const std::vector<std::string> lines(12, "a short line of text .");
  const std::string root = testing::fresh_dir("pretrain_wsd_refuse");
  PretrainOptions options = few_steps(6);
  options.schedule = ScheduleKind::kWarmupStableDecay;
  options.warmup_steps = 1;
  options.decay_steps = 3;  // from step 3: 0.0005 there, 0.000333 at step 4
  options.checkpoint_every = 5;
  options.on_step = [](int64_t step) {
    if (step == 5) stop_requested() = true;
  };
  ASSERT_TRUE(pretrain_mlm(config, lines, tokenizer, root + "/run", options).interrupted);
  options.on_step = nullptr;
  options.resume = true;
  const std::string path = root + "/run/checkpoints/checkpoint-5/trainer_state.json";
  // Its decay had begun: 9 steps would have kept step 4 at the peak.
  options.steps = 9;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, root + "/run", options),
                        path +
                            ": key 'scheduler': the checkpoint's schedule (wsd, peak 0.0005, "
                            "warmup 1, decay 3 of 6 steps) gave step 4 a learning rate of "
                            "0.000333333 where this run's (wsd, peak 0.0005, warmup 1, decay "
                            "3 of 9 steps) gives 0.0005");
  options.steps = 4;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, root + "/run", options),
                        path + ": the checkpoint is at step 5, past this run's 4 steps");
  options.steps = 6;
  options.lr = 1e-3;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, root + "/run", options),
                        "gave step 0 a learning rate of 0.0005 where this run's");
  options.lr = 5e-4;
  options.schedule = ScheduleKind::kLinear;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, root + "/run", options),
                        "(linear, peak 0.0005, warmup 1 of 6 steps)");

  // A checkpoint from before schedules were recorded resumes only with its own number of steps.
  options.schedule = ScheduleKind::kWarmupStableDecay;
  nlohmann::json state = nlohmann::json::parse(read_file(path));
  state["scheduler"] = nlohmann::json::object();
  state["extra"]["data"]["steps"] = 6;
  write_file_atomic(path, state.dump());
  options.steps = 7;
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, root + "/run", options),
                        "the checkpoint was made with steps 6, this run has 7 (it records no "
                        "schedule, so its steps cannot change)");
  options.steps = 6;
  EXPECT_EQ(pretrain_mlm(config, lines, tokenizer, root + "/run", options).steps, 6);

  // Nothing to branch from.
  options.resume = false;
  options.branch_from = root + "/run";
  EXPECT_ERROR_CONTAINS(pretrain_mlm(config, lines, tokenizer, root + "/other", options),
                        root + "/run: holds no checkpoint to branch from");
  remove_tree(root);
}

// The written tokenizer_config.json says what the tokenizer really does: a cased vocabulary
// pretrained without lower-casing must not come back lower-casing.
TEST(Pretraining, RecordsTheTokenizersRealLowerCasing) {
  WordPieceOptions cased;
  cased.lowercase = false;
  WordPieceTokenizer tokenizer(
      std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data/vocab/bert-base-cased-vocab.txt",
      cased);
  BertConfig config = tiny_config_for(tokenizer);
  PretrainOptions options;
  options.steps = 1;
  options.batch_size = 2;
  options.max_length = 16;
  const std::string dir = testing::fresh_dir("pretrain_cased");
  pretrain_mlm(config, std::vector<std::string>(8, "The Quick Brown Fox ."), tokenizer, dir,
               options);
  EXPECT_NE(read_file(dir + "/tokenizer_config.json").find("\"do_lower_case\": false"),
            std::string::npos);
  auto reloaded = load_tokenizer(dir);
  EXPECT_FALSE(reloaded->lowercase());
  EXPECT_EQ(reloaded->tokenize("The Fox"), tokenizer.tokenize("The Fox"));
}

}  // namespace
}  // namespace adaptertune
