#include "adaptertune/tasks/squad_features.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "adaptertune/error.h"
#include "text/unicode.h"

namespace adaptertune {
namespace {

// The context's white-space separated words, as byte spans.
SquadDocument split_words(const std::string& context) {
  SquadDocument document;
  const std::u32string text = detail::utf8_decode(context, "context");
  int64_t byte = 0, word_begin = -1;
  for (char32_t c : text) {
    const int64_t size = static_cast<int64_t>(detail::utf8_encode(c).size());
    if (detail::is_whitespace(c) || c == 0x202F) {
      if (word_begin >= 0) document.words.emplace_back(word_begin, byte);
      word_begin = -1;
    } else if (word_begin < 0) {
      word_begin = byte;
    }
    byte += size;
  }
  if (word_begin >= 0) document.words.emplace_back(word_begin, byte);
  return document;
}

// The word whose span holds byte `offset` (the next word when it falls on white space).
int64_t word_at(const SquadDocument& document, int64_t offset) {
  for (size_t w = 0; w < document.words.size(); ++w) {
    if (offset < document.words[w].second) return static_cast<int64_t>(w);
  }
  return static_cast<int64_t>(document.words.size()) - 1;
}

std::string joined(const std::vector<std::string>& tokens, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i <= end; ++i) out += (i > begin ? " " : "") + tokens[i];
  return out;
}

// The tokens' surface text without word-piece markers and white space, as code points.
std::u32string surface(const std::vector<std::string>& tokens) {
  std::string text;
  for (const std::string& token : tokens) {
    text += token.rfind("##", 0) == 0 ? token.substr(2) : token;
  }
  std::u32string out;
  for (char32_t c : detail::utf8_decode(text, "answer tokens")) {
    if (c != U'\u2581' && !detail::is_whitespace(c)) out += c;  // U+2581: SentencePiece's space
  }
  return out;
}

// BERT's get_final_text: the part of `original` (whole words of the context) that the predicted
// tokens spell, found after normalising `original` as the tokenizer does; `original` itself when
// they cannot be found there (an unknown token, say).
std::string final_text(const std::vector<std::string>& tokens, const std::string& original,
                       bool lowercase) {
  const std::u32string wanted = surface(tokens);
  const std::u32string source = detail::utf8_decode(original, "context");
  std::u32string normalised;
  std::vector<size_t> origin;  // the source code point each normalised one comes from
  for (size_t i = 0; i < source.size(); ++i) {
    if (detail::is_whitespace(source[i])) continue;
    std::u32string piece(1, source[i]);
    if (lowercase) {
      piece = detail::python_lower(piece);
      piece = detail::utf8_decode(detail::strip_accents(detail::utf8_encode(piece)), "context");
    }
    for (char32_t c : piece) {
      normalised += c;
      origin.push_back(i);
    }
  }
  const size_t found = wanted.empty() ? std::u32string::npos : normalised.find(wanted);
  if (found == std::u32string::npos) return original;
  const size_t first = origin[found], last = origin[found + wanted.size() - 1];
  return detail::utf8_encode(source.substr(first, last - first + 1));
}

// Windows over `tokens` context tokens: (start, length) pairs.
std::vector<std::pair<int64_t, int64_t>> windows(int64_t tokens, int64_t room, int64_t stride) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t start = 0;;) {
    const int64_t length = std::min(tokens - start, room);
    out.emplace_back(start, length);
    if (start + length >= tokens) break;
    start += std::min(length, stride);
  }
  return out;
}

// Whether window `w` gives token `position` the most context of all windows holding it: the
// smaller of its left and right context, plus a hundredth of the window's length for ties.
bool is_max_context(const std::vector<std::pair<int64_t, int64_t>>& spans, size_t w,
                    int64_t position) {
  double best = -1;
  size_t best_window = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const auto [start, length] = spans[i];
    const int64_t end = start + length - 1;
    if (position < start || position > end) continue;
    const double score =
        static_cast<double>(std::min(position - start, end - position)) + 0.01 * length;
    if (score > best) {
      best = score;
      best_window = i;
    }
  }
  return best_window == w;
}

}  // namespace

SquadAnswerOptions SquadAnswerOptions::for_data(const SquadDataset& data) const {
  SquadAnswerOptions options = *this;
  options.allow_no_answer = allow_no_answer || data.v2;
  return options;
}

QuestionAnsweringOptions QuestionAnsweringOverrides::applied_to(
    QuestionAnsweringOptions options) const {
  if (doc_stride) options.features.doc_stride = doc_stride;
  if (max_query_length) options.features.max_query_length = max_query_length;
  options.answers.n_best = n_best.value_or(options.answers.n_best);
  options.answers.max_answer_length = max_answer_length.value_or(options.answers.max_answer_length);
  options.answers.null_score_threshold =
      null_score_threshold.value_or(options.answers.null_score_threshold);
  return options;
}

int64_t SquadFeatureOptions::stride() const {
  return doc_stride.value_or(std::max<int64_t>(1, max_length / 3));
}

int64_t SquadFeatureOptions::query_length() const {
  return max_query_length.value_or(std::max<int64_t>(1, std::min<int64_t>(64, max_length / 2)));
}

void SquadFeatureOptions::validate() const {
  if ((max_query_length && *max_query_length < 1) || (doc_stride && *doc_stride < 1)) {
    throw Error("SquadFeatureOptions: max_query_length and doc_stride must be at least 1");
  }
  if (max_length < query_length() + 4) {
    throw Error("SquadFeatureOptions: max_length " + std::to_string(max_length) +
                " leaves no room for context after a question of up to " +
                std::to_string(query_length()) + " tokens and 3 special tokens");
  }
}

SquadFeatures make_squad_features(const SquadDataset& data, const Tokenizer& tokenizer,
                                  const SquadFeatureOptions& options) {
  options.validate();
  SquadFeatures out;
  for (size_t e = 0; e < data.examples.size(); ++e) {
    const SquadExample& example = data.examples[e];
    SquadDocument document = split_words(example.context);
    std::vector<std::string> question = tokenizer.tokenize(example.question);
    if (static_cast<int64_t>(question.size()) > options.query_length()) {
      question.resize(static_cast<size_t>(options.query_length()));
    }
    std::vector<std::string> doc_tokens;
    std::vector<int64_t> doc_token_word;
    std::vector<int64_t> word_first_token;
    for (size_t w = 0; w < document.words.size(); ++w) {
      const auto [begin, end] = document.words[w];
      word_first_token.push_back(static_cast<int64_t>(doc_tokens.size()));
      for (std::string& token : tokenizer.tokenize(example.context.substr(
               static_cast<size_t>(begin), static_cast<size_t>(end - begin)))) {
        doc_tokens.push_back(std::move(token));
        doc_token_word.push_back(static_cast<int64_t>(w));
      }
    }
    // The answer in tokens, narrowed to the tokens of its own text (an answer "1854" in the word
    // "(1854)" must not take the parentheses).
    int64_t answer_start = -1, answer_end = -1;
    if (!example.answers.empty() && !doc_tokens.empty()) {
      const SquadAnswer& answer = example.answers.front();
      const int64_t first_word = word_at(document, answer.start);
      const int64_t last_word =
          word_at(document, answer.start +
                                std::max<int64_t>(1, static_cast<int64_t>(answer.text.size())) - 1);
      answer_start = word_first_token[static_cast<size_t>(first_word)];
      answer_end = last_word + 1 < static_cast<int64_t>(word_first_token.size())
                       ? word_first_token[static_cast<size_t>(last_word + 1)] - 1
                       : static_cast<int64_t>(doc_tokens.size()) - 1;
      const std::vector<std::string> answer_tokens = tokenizer.tokenize(answer.text);
      if (!answer_tokens.empty() && answer_end >= answer_start) {
        const std::string wanted = joined(answer_tokens, 0, answer_tokens.size() - 1);
        bool narrowed = false;
        for (int64_t s = answer_start; s <= answer_end && !narrowed; ++s) {
          for (int64_t t = answer_end; t >= s && !narrowed; --t) {
            if (joined(doc_tokens, static_cast<size_t>(s), static_cast<size_t>(t)) == wanted) {
              answer_start = s;
              answer_end = t;
              narrowed = true;
            }
          }
        }
      }
    }
    const int64_t room = options.max_length - static_cast<int64_t>(question.size()) - 3;
    const auto spans = windows(static_cast<int64_t>(doc_tokens.size()), room, options.stride());
    for (size_t w = 0; w < spans.size(); ++w) {
      const auto [start, length] = spans[w];
      SquadFeature feature;
      feature.example = e;
      Encoding& enc = feature.encoding;
      auto add = [&](const std::string& token, int64_t type, int64_t word, bool max_context) {
        enc.tokens.push_back(token);
        enc.input_ids.push_back(tokenizer.token_to_id(token));
        enc.token_type_ids.push_back(type);
        enc.attention_mask.push_back(1);
        feature.token_word.push_back(word);
        feature.max_context.push_back(max_context);
      };
      const std::string cls = tokenizer.id_to_token(tokenizer.cls_id());
      const std::string sep = tokenizer.id_to_token(tokenizer.sep_id());
      add(cls, 0, -1, false);
      for (const auto& token : question) add(token, 0, -1, false);
      add(sep, 0, -1, false);
      const int64_t offset = static_cast<int64_t>(enc.tokens.size()) - start;
      for (int64_t i = start; i < start + length; ++i) {
        add(doc_tokens[static_cast<size_t>(i)], 1, doc_token_word[static_cast<size_t>(i)],
            is_max_context(spans, w, i));
      }
      add(sep, 1, -1, false);
      if (answer_start >= start && answer_end < start + length && answer_start >= 0) {
        feature.start_position = answer_start + offset;
        feature.end_position = answer_end + offset;
      }
      out.features.push_back(std::move(feature));
    }
    out.documents.push_back(std::move(document));
  }
  return out;
}

std::map<std::string, SquadAnswerPrediction> extract_squad_answers(
    const SquadDataset& data, const SquadFeatures& features, const Tokenizer& tokenizer,
    const std::vector<std::vector<float>>& start_logits,
    const std::vector<std::vector<float>>& end_logits, const SquadAnswerOptions& options) {
  if (start_logits.size() != features.features.size() ||
      end_logits.size() != features.features.size()) {
    throw Error("extract_squad_answers: " + std::to_string(features.features.size()) +
                " features but " + std::to_string(start_logits.size()) + " start and " +
                std::to_string(end_logits.size()) + " end logit rows");
  }
  struct Candidate {
    size_t feature;
    int64_t start, end;
    double score;
  };
  std::vector<std::vector<Candidate>> candidates(data.examples.size());
  std::vector<double> null_score(data.examples.size(), std::numeric_limits<double>::infinity());
  // The positions of the n_best highest of the first `count` logits, best first.
  auto top = [&](const std::vector<float>& logits, size_t count) {
    std::vector<int64_t> order(count);
    std::iota(order.begin(), order.end(), 0);
    const auto n = std::min<size_t>(static_cast<size_t>(options.n_best), order.size());
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                      [&](int64_t a, int64_t b) {
                        return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)];
                      });
    order.resize(n);
    return order;
  };
  for (size_t f = 0; f < features.features.size(); ++f) {
    const SquadFeature& feature = features.features[f];
    const std::vector<float>& starts = start_logits[f];
    const std::vector<float>& ends = end_logits[f];
    const size_t tokens = feature.encoding.input_ids.size();
    if (starts.size() < tokens || ends.size() < tokens) {
      throw Error("extract_squad_answers: feature " + std::to_string(f) + " has " +
                  std::to_string(tokens) + " tokens but " + std::to_string(starts.size()) +
                  " start and " + std::to_string(ends.size()) + " end logits");
    }
    null_score[feature.example] =
        std::min(null_score[feature.example], static_cast<double>(starts[0]) + ends[0]);
    const std::vector<int64_t> best_ends = top(ends, tokens);
    for (int64_t s : top(starts, tokens)) {
      for (int64_t e : best_ends) {
        const auto su = static_cast<size_t>(s), eu = static_cast<size_t>(e);
        if (feature.token_word[su] < 0 || feature.token_word[eu] < 0) continue;
        if (!feature.max_context[su] || e < s || e - s + 1 > options.max_answer_length) continue;
        candidates[feature.example].push_back(
            {f, s, e, static_cast<double>(starts[su]) + ends[eu]});
      }
    }
  }
  std::map<std::string, SquadAnswerPrediction> answers;
  for (size_t x = 0; x < data.examples.size(); ++x) {
    const SquadExample& example = data.examples[x];
    std::vector<Candidate>& list = candidates[x];
    std::stable_sort(list.begin(), list.end(),
                     [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
    SquadAnswerPrediction prediction;
    prediction.null_score = std::isfinite(null_score[x]) ? null_score[x] : 0.0;
    for (const Candidate& c : list) {
      if (static_cast<int64_t>(prediction.n_best.size()) >= options.n_best) break;
      const SquadFeature& feature = features.features[c.feature];
      const SquadDocument& document = features.documents[x];
      const auto first =
          document.words[static_cast<size_t>(feature.token_word[static_cast<size_t>(c.start)])];
      const auto last =
          document.words[static_cast<size_t>(feature.token_word[static_cast<size_t>(c.end)])];
      const std::string original = example.context.substr(
          static_cast<size_t>(first.first), static_cast<size_t>(last.second - first.first));
      const std::vector<std::string> tokens(feature.encoding.tokens.begin() + c.start,
                                            feature.encoding.tokens.begin() + c.end + 1);
      const std::string text = final_text(tokens, original, tokenizer.lowercase());
      // The same text from another window is the same answer: keep its best score only.
      if (std::any_of(prediction.n_best.begin(), prediction.n_best.end(),
                      [&](const auto& kept) { return kept.first == text; })) {
        continue;
      }
      prediction.n_best.emplace_back(text, c.score);
    }
    if (!prediction.n_best.empty()) {
      prediction.text = prediction.n_best.front().first;
      prediction.score = prediction.n_best.front().second;
    }
    if (options.allow_no_answer &&
        (prediction.n_best.empty() ||
         prediction.null_score - prediction.score > options.null_score_threshold)) {
      prediction.text.clear();
    }
    answers[example.id] = std::move(prediction);
  }
  return answers;
}

}  // namespace adaptertune
