#include "adaptertune/tasks/squad_features.h"

#include <torch/torch.h>

#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/error.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/text/wordpiece.h"
#include "test_util.h"

namespace adaptertune {
namespace {

const std::string kVocab =
    std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data/vocab/bert-base-uncased-vocab.txt";
const std::string kSquad = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/squad/";

SquadDataset one_question(const std::string& context, const std::string& answer,
                          const std::string& question = "what is it ?") {
  SquadDataset data;
  SquadExample example;
  example.id = "x";
  example.question = question;
  example.context = context;
  if (!answer.empty()) {
    const size_t at = context.find(answer);
    EXPECT_NE(at, std::string::npos);
    example.answers.push_back({answer, static_cast<int64_t>(at)});
  }
  data.examples.push_back(example);
  return data;
}

// Logits that put all weight on one span of each feature (none when a position is 0).
std::pair<std::vector<std::vector<float>>, std::vector<std::vector<float>>> one_hot(
    const SquadFeatures& features) {
  std::vector<std::vector<float>> starts, ends;
  for (const SquadFeature& f : features.features) {
    std::vector<float> s(f.encoding.input_ids.size(), 0.0f), e(s.size(), 0.0f);
    s[static_cast<size_t>(f.start_position)] = 10;
    e[static_cast<size_t>(f.end_position)] = 10;
    starts.push_back(s);
    ends.push_back(e);
  }
  return {starts, ends};
}

TEST(SquadFeatures, LongContextsBecomeOverlappingWindows) {
  WordPieceTokenizer tokenizer(kVocab);
  std::string context;
  for (int i = 0; i < 40; ++i) context += "word" + std::to_string(i) + " ";
  context += "the answer is denver broncos today";
  SquadFeatureOptions options;
  options.max_length = 32;
  options.doc_stride = 10;
  options.max_query_length = 8;
  const SquadDataset data = one_question(context, "denver broncos");
  const SquadFeatures f = make_squad_features(data, tokenizer, options);
  ASSERT_GT(f.features.size(), 3u);
  int windows_with_answer = 0;
  std::map<std::pair<size_t, int64_t>, int> max_context_count;  // (word, token-in-word) → windows
  for (const SquadFeature& feature : f.features) {
    const Encoding& e = feature.encoding;
    EXPECT_LE(e.input_ids.size(), 32u);
    EXPECT_EQ(e.tokens.front(), "[CLS]");
    EXPECT_EQ(e.tokens.back(), "[SEP]");
    EXPECT_EQ(e.token_type_ids.front(), 0);
    EXPECT_EQ(e.token_type_ids.back(), 1);
    if (feature.start_position > 0) {
      ++windows_with_answer;
      EXPECT_EQ(e.tokens[static_cast<size_t>(feature.start_position)], "denver");
      EXPECT_EQ(e.tokens[static_cast<size_t>(feature.end_position)], "broncos");
    }
  }
  EXPECT_GE(windows_with_answer, 1);
  // Every context token has its maximal context in exactly one window.
  std::map<std::string, int> by_token;
  for (const SquadFeature& feature : f.features) {
    for (size_t t = 0; t < feature.encoding.tokens.size(); ++t) {
      if (feature.token_word[t] >= 0 && feature.max_context[t]) {
        ++by_token[std::to_string(feature.token_word[t]) + ":" + feature.encoding.tokens[t]];
      }
    }
  }
  for (const auto& [token, count] : by_token) EXPECT_EQ(count, 1) << token;
  EXPECT_EQ(by_token.size(), 40u * 2 + 6);  // "wordN" is two tokens: "word", "##N"
}

// Unless a stride is given, windows overlap at any length (a third of the window apart, BERT's
// 128 for its 384 tokens): with a fixed stride of 128, windows of 32 tokens met end to end and an
// answer across their border was in no window, so a model could never be trained or asked to
// give it.
TEST(SquadFeatures, WindowsOverlapByDefaultAtAnyLength) {
  EXPECT_EQ(SquadFeatureOptions{}.stride(), 128);
  SquadFeatureOptions options;
  options.max_length = 32;
  options.max_query_length = 8;
  EXPECT_EQ(options.stride(), 10);
  options.doc_stride = 4;
  EXPECT_EQ(options.stride(), 4);
  options.doc_stride = 0;
  EXPECT_ERROR_CONTAINS(options.validate(), "doc_stride must be at least 1");

  WordPieceTokenizer tokenizer(kVocab);
  std::string context;  // "1 2 ... 60": a token each
  for (int i = 1; i <= 60; ++i) context += std::to_string(i) + (i < 60 ? " " : "");
  // "what is it ?" is 4 tokens, so a window of 32 has room for 25 context tokens: "24" is the
  // 24th, and the answer crosses from the first 25 into the next.
  const SquadDataset data = one_question(context, "24 25 26 27");
  options.doc_stride.reset();
  const SquadFeatures f = make_squad_features(data, tokenizer, options);
  std::vector<std::string> first_tokens;
  int windows_with_answer = 0;
  for (const SquadFeature& feature : f.features) {
    first_tokens.push_back(feature.encoding.tokens[6]);  // after [CLS], 4 question tokens, [SEP]
    if (feature.start_position > 0) {
      ++windows_with_answer;
      EXPECT_EQ(feature.encoding.tokens[static_cast<size_t>(feature.start_position)], "24");
      EXPECT_EQ(feature.encoding.tokens[static_cast<size_t>(feature.end_position)], "27");
    }
  }
  EXPECT_EQ(first_tokens, (std::vector<std::string>{"1", "11", "21", "31", "41"}));
  EXPECT_EQ(windows_with_answer, 2);  // the windows from "11" and from "21"
}

// Unset, the question length is SQuAD's 64 but at most half the window, so that a short window
// keeps room for context (64 for 384 and 128; 64 would leave a window of 64 none).
TEST(SquadFeatures, QuestionsKeepAtMostHalfOfAShortWindowByDefault) {
  SquadFeatureOptions options;
  EXPECT_EQ(options.query_length(), 64);
  options.max_length = 128;
  EXPECT_EQ(options.query_length(), 64);
  options.max_length = 64;
  EXPECT_EQ(options.query_length(), 32);
  EXPECT_NO_THROW(options.validate());
  options.max_query_length = 61;  // as given: 61 + 3 special tokens leave no context
  EXPECT_ERROR_CONTAINS(options.validate(),
                        "leaves no room for context after a question of up "
                        "to 61 tokens");
  options.max_query_length = 0;
  EXPECT_ERROR_CONTAINS(options.validate(), "max_query_length and doc_stride must be at least 1");

  WordPieceTokenizer tokenizer(kVocab);
  std::string question;  // 30 tokens: "q1 ... q30" are "q", "##1", ... two each
  for (int i = 1; i <= 15; ++i) question += "q" + std::to_string(i) + " ";
  const SquadDataset data = one_question("one two three four five", "three", question);
  SquadFeatureOptions short_windows;
  short_windows.max_length = 24;  // questions of at most 12 tokens by default
  const SquadFeatures f = make_squad_features(data, tokenizer, short_windows);
  ASSERT_FALSE(f.features.empty());
  const std::vector<std::string>& tokens = f.features[0].encoding.tokens;
  EXPECT_EQ(tokens[13], "[SEP]") << "[CLS], 12 question tokens, then [SEP]";
  EXPECT_GT(f.features[0].start_position, 0) << "the answer is in the window";
}

TEST(SquadFeatures, AnswersNarrowToTheirOwnTokensAndMapBackToTheOriginalText) {
  WordPieceTokenizer tokenizer(kVocab);
  const SquadDataset data =
      one_question("He was born (1854) in Paris, and the Denver Broncos. Won.", "1854");
  const SquadFeatures f = make_squad_features(data, tokenizer);
  ASSERT_EQ(f.features.size(), 1u);
  const SquadFeature& feature = f.features[0];
  EXPECT_EQ(feature.encoding.tokens[static_cast<size_t>(feature.start_position)], "1854");
  EXPECT_EQ(feature.start_position, feature.end_position);
  auto [starts, ends] = one_hot(f);
  EXPECT_EQ(extract_squad_answers(data, f, tokenizer, starts, ends).at("x").text, "1854");

  // A span of "denver broncos" comes back in the context's own case, without the full stop
  // that its word carries.
  const SquadDataset broncos = one_question("the Denver Broncos. Won.", "Denver Broncos");
  const SquadFeatures g = make_squad_features(broncos, tokenizer);
  auto [s2, e2] = one_hot(g);
  const auto answer = extract_squad_answers(broncos, g, tokenizer, s2, e2).at("x");
  EXPECT_EQ(answer.text, "Denver Broncos");
  EXPECT_NEAR(answer.score, 20.0, 1e-6);
}

TEST(SquadFeatures, ExtractingTheLabelledSpansGivesTheGoldAnswers) {
  WordPieceTokenizer tokenizer(kVocab);
  for (const std::string version : {"v1.1", "v2.0"}) {
    const SquadDataset data = read_squad(kSquad + "dev-" + version + ".json");
    SquadFeatureOptions options;
    // Several windows per context, wide enough that each answer lies wholly in a window where
    // its first token has maximal context (else, as in BERT's code, no window may offer it).
    options.max_length = 28;
    options.doc_stride = 8;
    options.max_query_length = 8;
    const SquadFeatures f = make_squad_features(data, tokenizer, options);
    auto [starts, ends] = one_hot(f);
    SquadAnswerOptions answer_options;
    answer_options.allow_no_answer = data.v2;
    const auto answers = extract_squad_answers(data, f, tokenizer, starts, ends, answer_options);
    std::map<std::string, std::string> predictions;
    for (const auto& [id, a] : answers) predictions[id] = a.text;
    const SquadScores scores = squad_evaluate(data, predictions);
    EXPECT_DOUBLE_EQ(scores.exact, 100.0) << version;
  }
}

TEST(SquadFeatures, NoAnswerWinsWhenTheNullScoreIsHigher) {
  WordPieceTokenizer tokenizer(kVocab);
  const SquadDataset data = one_question("nothing here answers it", "");
  const SquadFeatures f = make_squad_features(data, tokenizer);
  ASSERT_EQ(f.features[0].start_position, 0);
  std::vector<std::vector<float>> starts{
      std::vector<float>(f.features[0].encoding.tokens.size(), 0)};
  std::vector<std::vector<float>> ends = starts;
  starts[0][0] = ends[0][0] = 5;  // [CLS]
  starts[0][7] = ends[0][8] = 4;  // a span scoring 8 < the null score 10
  SquadAnswerOptions options;
  options.allow_no_answer = true;
  EXPECT_EQ(extract_squad_answers(data, f, tokenizer, starts, ends, options).at("x").text, "");
  options.null_score_threshold = 3;  // 10 - 8 is not more than 3
  EXPECT_NE(extract_squad_answers(data, f, tokenizer, starts, ends, options).at("x").text, "");
  options.allow_no_answer = false;
  options.null_score_threshold = 0;
  EXPECT_NE(extract_squad_answers(data, f, tokenizer, starts, ends, options).at("x").text, "");
  EXPECT_ERROR_CONTAINS(extract_squad_answers(data, f, tokenizer, {}, {}, options),
                        "1 features but 0 start and 0 end logit rows");
  SquadFeatureOptions tight;
  tight.max_length = 10;
  tight.max_query_length = 8;
  EXPECT_ERROR_CONTAINS(make_squad_features(data, tokenizer, tight), "leaves no room for context");
}

TEST(BertForQuestionAnswering, SpanLogitsLossAndHuggingFaceLayout) {
  torch::manual_seed(0);
  BertConfig config = testing::tiny_config();
  BertForQuestionAnswering model(config);
  model->eval();
  const torch::Tensor ids = testing::random_ids(3, 7);
  const torch::Tensor logits = model(ids);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{3, 7, 2}));
  // The loss is the mean of the start and end cross-entropies; a position beyond the sequence
  // is ignored (clamped to seq), as in Hugging Face.
  const torch::Tensor starts = torch::tensor({1, 2, 3}, torch::kLong);
  const torch::Tensor ends = torch::tensor({2, 99, 4}, torch::kLong);
  const torch::Tensor expected =
      (torch::nn::functional::cross_entropy(logits.select(2, 0), starts) +
       torch::nn::functional::cross_entropy(logits.select(2, 1).index({torch::tensor({0, 2})}),
                                            torch::tensor({2, 4}))) /
      2;
  EXPECT_NEAR(model->loss(logits, starts, ends).item<double>(), expected.item<double>(), 1e-6);
  EXPECT_ERROR_CONTAINS(model->loss(logits.select(2, 0), starts, ends), "[batch, seq, 2]");
  EXPECT_EQ(classify_parameter("qa_outputs.weight"), ParameterGroup::kHead);

  const std::string dir = testing::fresh_dir("qa_layout");
  save_pretrained(*model, dir);
  EXPECT_NE(read_file(dir + "/config.json").find("\"BertForQuestionAnswering\""),
            std::string::npos);
  LoadReport report;
  BertForQuestionAnswering loaded = load_bert_for_question_answering(dir, &report);
  loaded->eval();
  EXPECT_TRUE(report.missing.empty()) << report.summary();
  EXPECT_TRUE(torch::equal(loaded(ids), logits));
  // A classifier loads from a span head's checkpoint and leaves the span head out, named.
  LoadReport classifier_report;
  load_bert_for_sequence_classification(dir, HeadConfig::classification({"a", "b"}),
                                        &classifier_report);
  EXPECT_NE(classifier_report.summary().find("qa_outputs.weight"), std::string::npos)
      << classifier_report.summary();
}

}  // namespace
}  // namespace adaptertune
