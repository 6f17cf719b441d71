#pragma once
/// @file squad_features.h
/// From SQuAD questions to model inputs (windows over long contexts) and from span logits back to
/// answer texts, as BERT's reference implementation does it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "adaptertune/tasks/squad.h"
#include "adaptertune/text/tokenizer.h"

namespace adaptertune {

/// How questions and contexts become windows.
struct SquadFeatureOptions {
  /// Tokens per window: [CLS] question [SEP] context part [SEP].
  int64_t max_length = 384;
  /// Context tokens between the starts of two windows over one context; unset, a third of
  /// max_length (BERT's 128 for its 384 tokens), so that windows overlap at any length (a stride
  /// of at least the window's room for context gives windows that meet without overlapping, and
  /// an answer across their border is in none).
  std::optional<int64_t> doc_stride;
  /// Question tokens kept (the rest is cut); unset, SQuAD's 64 but at most half of max_length
  /// (64 for 384 and 128, 32 for 64), so that short windows keep room for context.
  std::optional<int64_t> max_query_length;

  /// doc_stride, else a third of max_length (at least 1).
  int64_t stride() const;
  /// max_query_length, else min(64, max_length / 2) (at least 1).
  int64_t query_length() const;

  /// Throws Error naming the option that is out of range, or a window with no room for context.
  void validate() const;
};

/// One window of one question's context, encoded with the question.
struct SquadFeature {
  /// The question's index in SquadDataset::examples.
  size_t example = 0;
  /// Token ids, type ids (0: [CLS], question, [SEP]; 1: context, last [SEP]) and tokens.
  Encoding encoding;
  /// For each token, the context word it comes from (index into SquadDocument::words); -1 for
  /// the question and special tokens.
  std::vector<int64_t> token_word;
  /// For each context token, whether this window gives it the most context on both sides of
  /// all windows that hold it (answers are only taken from there).
  std::vector<bool> max_context;
  /// Training target: the answer's first and last token in this window; 0 ([CLS]) when the
  /// question is unanswerable or its answer is not wholly inside the window.
  int64_t start_position = 0;
  int64_t end_position = 0;
};

/// A context split into white-space separated words, with their byte spans.
struct SquadDocument {
  std::vector<std::pair<int64_t, int64_t>> words;  ///< [begin, end) in the context, per word
};

struct SquadFeatures {
  std::vector<SquadFeature> features;
  /// Per question (same order as the data set's examples).
  std::vector<SquadDocument> documents;
};

/// Windows over every question of `data`: the context's words are tokenized one by one (so that
/// each token knows its word), the question cut to max_query_length, and windows of the context
/// start every stride() tokens until one reaches its end. The answer (the first gold answer)
/// is located in tokens and narrowed to the tokens of its own text, as BERT's reference code does.
SquadFeatures make_squad_features(const SquadDataset& data, const Tokenizer& tokenizer,
                                  const SquadFeatureOptions& options = {});

/// How answers are taken from span logits.
struct SquadAnswerOptions {
  /// Best start and best end positions considered per window.
  int64_t n_best = 20;
  /// Longest answer, in tokens.
  int64_t max_answer_length = 30;
  /// SQuAD v2.0: answer "" when the null score (the [CLS] start and end logits, lowest over the
  /// windows) beats the best span's score by more than this. On by itself for a v2.0 data set
  /// (for_data()); given for a model that learnt to answer nothing (a span pack whose run
  /// evaluated on v2.0 records it), so that it does so on any data, as it does when served.
  bool allow_no_answer = false;
  double null_score_threshold = 0.0;

  /// These options as they answer `data`: allow_no_answer too when `data` is SQuAD v2.0 (its
  /// questions may have no answer).
  SquadAnswerOptions for_data(const SquadDataset& data) const;
};

/// How questions become windows and how answers come back from them.
struct QuestionAnsweringOptions {
  SquadFeatureOptions features;
  SquadAnswerOptions answers;
};

/// Settings that replace, each where given, what a span task runs with otherwise (what its pack
/// records, else the defaults): how a Predictor or a command answers with other windows or answer
/// options than the task was trained with, as Hugging Face's question-answering pipeline takes
/// them per call. The windows' length is max_length's business (PredictorOptions::max_length).
struct QuestionAnsweringOverrides {
  std::optional<int64_t> doc_stride;
  std::optional<int64_t> max_query_length;
  std::optional<int64_t> n_best;
  std::optional<int64_t> max_answer_length;
  std::optional<double> null_score_threshold;

  /// `options` with each setting given here in its place. Checks nothing (the caller validates
  /// the windows, naming where they come from).
  QuestionAnsweringOptions applied_to(QuestionAnsweringOptions options) const;
};

/// One question's answer with its score (start + end logit), and the null score.
struct SquadAnswerPrediction {
  std::string text;
  double score = 0;
  double null_score = 0;
  /// The n-best spans' texts and scores, best first (for inspection).
  std::vector<std::pair<std::string, double>> n_best;
};

/// The answers of `data`'s questions from their windows' logits (`start_logits[f]` and
/// `end_logits[f]` per feature of `features`, one value per token). A span must lie in the
/// context, end at or after its start, be at most max_answer_length tokens long and start where
/// its window has maximal context. Its text is the context's original characters: the
/// tokens' text is found in the words they come from (lower-cased and without accents when the
/// tokenizer does that), as BERT's get_final_text does, else the whole words are taken. Keyed by
/// question id.
std::map<std::string, SquadAnswerPrediction> extract_squad_answers(
    const SquadDataset& data, const SquadFeatures& features, const Tokenizer& tokenizer,
    const std::vector<std::vector<float>>& start_logits,
    const std::vector<std::vector<float>>& end_logits, const SquadAnswerOptions& options = {});

}  // namespace adaptertune
