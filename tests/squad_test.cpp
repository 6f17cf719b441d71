#include "adaptertune/tasks/squad.h"

#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "test_util.h"

namespace adaptertune {
namespace {

const std::string kSquad = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/squad/";

std::map<std::string, std::string> predictions_of(const std::string& path) {
  return nlohmann::json::parse(read_file(path)).get<std::map<std::string, std::string>>();
}

TEST(Squad, ReadsV11AndV20WithByteOffsetsOfTheAnswers) {
  const SquadDataset v1 = read_squad(kSquad + "dev-v1.1.json");
  EXPECT_EQ(v1.version, "1.1");
  EXPECT_FALSE(v1.v2);
  ASSERT_EQ(v1.examples.size(), 9u);
  EXPECT_EQ(v1.examples[0].id, "q1");
  EXPECT_EQ(v1.examples[0].title, "Broncos");
  ASSERT_EQ(v1.examples[0].answers.size(), 2u);
  // "İstanbul's théâtre, ÜBER ALLES, hosted an anthem: …": character 39 is byte 45 (İ, é, â
  // and Ü take two bytes each).
  const SquadExample& u2 = v1.examples[6];
  EXPECT_EQ(u2.answers[0].start, 39 + 4);
  EXPECT_EQ(u2.context.substr(static_cast<size_t>(u2.answers[0].start), u2.answers[0].text.size()),
            u2.answers[0].text);

  const SquadDataset v2 = read_squad(kSquad + "dev-v2.0.json");
  EXPECT_TRUE(v2.v2);
  ASSERT_EQ(v2.examples.size(), 6u);
  EXPECT_TRUE(v2.examples[2].is_impossible);
  EXPECT_TRUE(v2.examples[2].answers.empty()) << "plausible answers are no answers";
}

// Expected values: the official scripts' scoring functions (evaluate-v1.1.py and
// evaluate-v2.0.py as published, run once on these files on 2026-12-01: v1.1 exact_match
// 44.44444444444444, f1 68.78306878306879; v2.0 exact 33.333333333333336, f1 55.55555555555555,
// HasAns 25.0 / 58.33333333333333 of 4, NoAns 50.0 / 50.0 of 2), which
// tests/python/squad_reference_eval.py, a standard-library transcription of their rules, also
// gives (ctest squad.reference_eval.* keeps it giving them).
TEST(Squad, ScoresAsTheOfficialScriptsDo) {
  for (const std::string version : {"v1.1", "v2.0"}) {
    SCOPED_TRACE(version);
    const SquadDataset data = read_squad(kSquad + "dev-" + version + ".json");
    const SquadScores s =
        squad_evaluate(data, predictions_of(kSquad + "predictions-" + version + ".json"));
    const auto expected =
        nlohmann::json::parse(read_file(kSquad + "expected-scores-" + version + ".json"));
    EXPECT_NEAR(s.exact, expected["exact"].get<double>(), 1e-9);
    EXPECT_NEAR(s.f1, expected["f1"].get<double>(), 1e-9);
    EXPECT_EQ(s.total, expected["total"].get<int64_t>());
    EXPECT_EQ(s.missing, expected["missing"].get<int64_t>());
    EXPECT_NEAR(s.has_answer_exact, expected["has_answer_exact"].get<double>(), 1e-9);
    EXPECT_NEAR(s.has_answer_f1, expected["has_answer_f1"].get<double>(), 1e-9);
    EXPECT_EQ(s.has_answer_total, expected["has_answer_total"].get<int64_t>());
    EXPECT_NEAR(s.no_answer_exact, expected["no_answer_exact"].get<double>(), 1e-9);
    EXPECT_NEAR(s.no_answer_f1, expected["no_answer_f1"].get<double>(), 1e-9);
    EXPECT_EQ(s.no_answer_total, expected["no_answer_total"].get<int64_t>());
  }
}

TEST(Squad, NormalisesAnswersAsTheOfficialScripts) {
  EXPECT_EQ(squad_normalize_answer("the  Denver Broncos!"), "denver broncos");
  EXPECT_EQ(squad_normalize_answer("an anthem: The Apple and a banana"), "anthem apple and banana");
  EXPECT_EQ(squad_normalize_answer("a-b the_c"), "ab thec");  // '_' is punctuation, removed first
  EXPECT_EQ(squad_normalize_answer("24–10"), "24–10");        // an en dash is not ASCII
  EXPECT_EQ(squad_normalize_answer("ÜBER Théâtre."), "über théâtre");
  EXPECT_EQ(squad_normalize_answer("İstanbul"), "i\xCC\x87stanbul");  // Python's full lower-casing
  EXPECT_EQ(squad_normalize_answer("théa a\xC3\xA9"), "théa aé");     // "a" inside words stays
  EXPECT_EQ(squad_normalize_answer("The"), "");
  EXPECT_DOUBLE_EQ(squad_f1("", ""), 1.0);
  EXPECT_DOUBLE_EQ(squad_f1("x", ""), 0.0);
  EXPECT_DOUBLE_EQ(squad_f1("the cat sat", "a cat sat down"), 0.8);
  EXPECT_DOUBLE_EQ(squad_exact_match("Cat.", "the cat"), 1.0);
}

TEST(Squad, MalformedFilesNameTheQuestion) {
  const std::string good_answer = R"({"text": "b", "answer_start": 1})";
  auto file = [](const std::string& qas) {
    return R"({"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": "abc", "qas": [)" +
           qas + "]}]}]}";
  };
  EXPECT_ERROR_CONTAINS(
      parse_squad(
          file(R"({"id": "x", "question": "?", "answers": [{"text": "b", "answer_start": 2}]})"),
          "s.json"),
      "s.json: data[0].paragraphs[0].qas[0].answers[0]: the answer \"b\" is not at answer_start 2 "
      "of the context");
  EXPECT_ERROR_CONTAINS(
      parse_squad(file(R"({"id": "x", "question": "?", "answers": [)" + good_answer + "]}, " +
                       R"({"id": "x", "question": "?", "answers": [)" + good_answer + "]}"),
                  "s.json"),
      "qas[1]: question id \"x\" appears twice");
  EXPECT_ERROR_CONTAINS(parse_squad(file(R"({"id": 5, "question": "?", "answers": []})"), "s.json"),
                        "qas[0]: \"id\" must be a string");
  EXPECT_ERROR_CONTAINS(parse_squad("{\"data\": 3}", "s.json"),
                        "s.json: \"data\" must be an array");
  EXPECT_ERROR_CONTAINS(parse_squad("[1,", "s.json"), "s.json: not valid JSON");
  SquadReadOptions skip;
  skip.skip_malformed = true;
  const SquadDataset kept = parse_squad(
      file(R"({"id": "x", "question": "?", "answers": [{"text": "b", "answer_start": 9}]}, )"
           R"({"id": "y", "question": "?", "answers": [)" +
           good_answer + "]}"),
      "s.json", skip);
  ASSERT_EQ(kept.examples.size(), 1u);
  EXPECT_EQ(kept.examples[0].id, "y");
  EXPECT_EQ(kept.skipped.size(), 1u);
  // v2.0 scores every question.
  SquadDataset v2 = read_squad(kSquad + "dev-v2.0.json");
  EXPECT_ERROR_CONTAINS(squad_evaluate(v2, {{"n1", "x"}}), "no prediction for question \"n2\"");
}

}  // namespace
}  // namespace adaptertune
