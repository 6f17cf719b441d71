#pragma once
/// @file squad.h
/// Extractive question answering as in SQuAD v1.1 and v2.0: the JSON reader, and exact match
/// and F1 computed as the official evaluation scripts compute them.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace adaptertune {

/// One gold answer: its text and where it starts in the context.
struct SquadAnswer {
  std::string text;
  /// Byte offset of the answer in the context (UTF-8). The JSON's `answer_start` counts
  /// characters (code points), as Python does; the reader converts it.
  int64_t start = 0;
};

/// One question about one context.
struct SquadExample {
  std::string id;
  std::string title;
  std::string question;
  std::string context;
  /// The gold answers (training files have one, dev files up to a handful); empty when the
  /// question is unanswerable (v2.0).
  std::vector<SquadAnswer> answers;
  /// v2.0's `is_impossible`: the context does not answer the question.
  bool is_impossible = false;
};

/// How read_squad() treats malformed questions.
struct SquadReadOptions {
  /// Skip a question whose answer does not lie where its `answer_start` says (and other
  /// malformed questions) instead of throwing; they are listed in SquadDataset::skipped.
  bool skip_malformed = false;
};

/// The questions of a SQuAD file, in file order.
struct SquadDataset {
  std::string path;
  /// The file's `version` ("1.1", "v2.0", …; empty when it has none).
  std::string version;
  /// Whether the file has v2.0's unanswerable questions (any `is_impossible` key, or a version
  /// starting with "v2"/"2"). It decides how squad_evaluate() scores.
  bool v2 = false;
  std::vector<SquadExample> examples;
  std::vector<std::string> skipped;
};

/// Reads a SQuAD v1.1 or v2.0 JSON file: `{"version", "data": [{"title", "paragraphs":
/// [{"context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}],
/// "is_impossible", "plausible_answers"}]}]}]}` (v2.0's plausible answers are ignored). Errors
/// name the file and the JSON path of what is wrong (`data[3].paragraphs[0].qas[2].answers[0]:
/// the answer "…" is not at answer_start 17 of the context`); question ids must be unique.
SquadDataset read_squad(const std::string& path, const SquadReadOptions& options = {});
/// read_squad() on contents in memory; `path` names them in errors.
SquadDataset parse_squad(std::string_view contents, const std::string& path,
                         const SquadReadOptions& options = {});

/// The official scripts' answer normalisation: lower-case (Python's `str.lower()`), remove
/// ASCII punctuation, remove the words "a", "an", "the", and collapse white space.
std::string squad_normalize_answer(const std::string& text);
/// 1 when `prediction` and `gold` are equal after normalisation, else 0.
double squad_exact_match(const std::string& prediction, const std::string& gold);
/// Token F1 of the normalised texts, as the v2.0 script computes it: 1 when both are empty, 0
/// when one is. (The v1.1 script gives 0 when both are empty; squad_evaluate() follows the
/// version of its data set.)
double squad_f1(const std::string& prediction, const std::string& gold);

/// Scores as the official scripts report them, in percent.
struct SquadScores {
  double exact = 0, f1 = 0;
  int64_t total = 0;
  /// v2.0: the same over the answerable and the unanswerable questions (0 totals for v1.1).
  double has_answer_exact = 0, has_answer_f1 = 0;
  int64_t has_answer_total = 0;
  double no_answer_exact = 0, no_answer_f1 = 0;
  int64_t no_answer_total = 0;
  /// Questions without a prediction (v1.1 scores them 0, as its script does).
  int64_t missing = 0;
};

/// Exact match and F1 of `predictions` (question id → answer text, "" for no answer) on
/// `data`, each question scored against its best-matching gold answer, exactly as
/// evaluate-v1.1.py or evaluate-v2.0.py (without a no-answer threshold) would score them:
/// v1.1 compares with every gold answer; v2.0 drops gold answers that normalise to nothing and
/// scores an unanswerable question against "". A v2.0 data set needs a prediction for every
/// question (Error naming the first missing id); predictions for unknown ids are ignored, as the
/// scripts ignore them.
SquadScores squad_evaluate(const SquadDataset& data,
                           const std::map<std::string, std::string>& predictions);

}  // namespace adaptertune
