#include "adaptertune/tasks/squad.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "json_integer.h"
#include "text/unicode.h"

namespace adaptertune {
namespace {

using Json = nlohmann::json;

// The string at `key` of `object`; Error naming the JSON path otherwise.
std::string string_at(const Json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    throw Error(where + ": \"" + key + "\" must be a string");
  }
  return it->get<std::string>();
}

const Json& array_at(const Json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_array()) {
    throw Error(where + ": \"" + key + "\" must be an array");
  }
  return *it;
}

// Byte offset of code point `index` of the UTF-8 `text` (its size when index is its length);
// -1 when the text is shorter.
int64_t byte_offset_of_character(const std::string& text, int64_t index) {
  int64_t characters = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (characters == index) return static_cast<int64_t>(i);
    ++characters;
  }
  return characters == index ? static_cast<int64_t>(text.size()) : -1;
}

SquadExample read_question(const Json& qa, const std::string& title, const std::string& context,
                           const std::string& where) {
  if (!qa.is_object()) throw Error(where + ": must be an object");
  SquadExample example;
  example.id = string_at(qa, "id", where);
  example.title = title;
  example.question = string_at(qa, "question", where);
  example.context = context;
  if (auto it = qa.find("is_impossible"); it != qa.end()) {
    if (!it->is_boolean()) throw Error(where + ": \"is_impossible\" must be true or false");
    example.is_impossible = it->get<bool>();
  }
  const Json& answers = array_at(qa, "answers", where);
  for (size_t a = 0; a < answers.size(); ++a) {
    const std::string at = where + ".answers[" + std::to_string(a) + "]";
    const Json& answer = answers[a];
    if (!answer.is_object()) throw Error(at + ": must be an object");
    SquadAnswer gold;
    gold.text = string_at(answer, "text", at);
    auto found = answer.find("answer_start");
    const std::optional<int64_t> start =
        found == answer.end() ? std::nullopt : detail::integer_value(*found);
    if (!start || *start < 0) throw Error(at + ": \"answer_start\" must be an integer >= 0");
    gold.start = byte_offset_of_character(context, *start);
    if (gold.start < 0 ||
        context.compare(static_cast<size_t>(gold.start), gold.text.size(), gold.text) != 0) {
      throw Error(at + ": the answer \"" + gold.text + "\" is not at answer_start " +
                  std::to_string(*start) + " of the context");
    }
    example.answers.push_back(std::move(gold));
  }
  if (example.is_impossible && !example.answers.empty()) {
    throw Error(where + ": an impossible question (is_impossible) has answers");
  }
  return example;
}

// Python's `str.split()` of `text`.
std::vector<std::u32string> python_split(const std::u32string& text) {
  std::vector<std::u32string> words;
  std::u32string word;
  for (char32_t c : text) {
    if (detail::is_python_space(c)) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

bool is_ascii_punctuation(char32_t c) {  // Python's string.punctuation
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
         (c >= 123 && c <= 126);
}

// The normalised answer's words, as `normalize_answer(s).split()` gives them.
std::vector<std::u32string> normalized_words(const std::string& text) {
  const std::u32string lowered = detail::python_lower(detail::utf8_decode(text, "answer"));
  std::u32string kept;
  for (char32_t c : lowered) {
    if (!is_ascii_punctuation(c)) kept += c;
  }
  // re.sub(r"\b(a|an|the)\b", " ", text): an article between word boundaries becomes a space.
  std::u32string out;
  const std::u32string articles[] = {U"the", U"an", U"a"};
  for (size_t i = 0; i < kept.size();) {
    const bool boundary_before = i == 0 || !detail::is_python_word_char(kept[i - 1]);
    bool replaced = false;
    if (boundary_before) {
      for (const auto& article : articles) {
        const size_t end = i + article.size();
        if (kept.compare(i, article.size(), article) == 0 &&
            (end == kept.size() || !detail::is_python_word_char(kept[end]))) {
          out += U' ';
          i = end;
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out += kept[i++];
  }
  return python_split(out);
}

double token_f1(const std::vector<std::u32string>& prediction,
                const std::vector<std::u32string>& gold) {
  std::multiset<std::u32string> remaining(gold.begin(), gold.end());
  int64_t same = 0;
  for (const auto& word : prediction) {
    auto it = remaining.find(word);
    if (it != remaining.end()) {
      remaining.erase(it);
      ++same;
    }
  }
  if (same == 0) return 0;
  const double precision = static_cast<double>(same) / static_cast<double>(prediction.size());
  const double recall = static_cast<double>(same) / static_cast<double>(gold.size());
  return 2 * precision * recall / (precision + recall);
}

// v2.0's F1: 1 when both are empty, 0 when only one is.
double f1_with_empty_rule(const std::vector<std::u32string>& prediction,
                          const std::vector<std::u32string>& gold) {
  if (prediction.empty() || gold.empty()) return prediction == gold ? 1.0 : 0.0;
  return token_f1(prediction, gold);
}

}  // namespace

SquadDataset read_squad(const std::string& path, const SquadReadOptions& options) {
  return parse_squad(read_file(path), path, options);
}

SquadDataset parse_squad(std::string_view contents, const std::string& path,
                         const SquadReadOptions& options) {
  check_json_nesting(contents, path);
  Json root;
  try {
    root = Json::parse(contents);
  } catch (const Json::exception& e) {
    throw Error(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!root.is_object()) throw Error(path + ": expected a JSON object with \"data\"");
  SquadDataset data;
  data.path = path;
  if (auto it = root.find("version"); it != root.end() && it->is_string()) {
    data.version = it->get<std::string>();
  }
  data.v2 = data.version.rfind("v2", 0) == 0 || data.version.rfind("2", 0) == 0;
  const Json& articles = array_at(root, "data", path);
  std::set<std::string> ids;
  for (size_t d = 0; d < articles.size(); ++d) {
    const std::string article_at = path + ": data[" + std::to_string(d) + "]";
    const Json& article = articles[d];
    if (!article.is_object()) throw Error(article_at + ": must be an object");
    const std::string title = article.contains("title") && article["title"].is_string()
                                  ? article["title"].get<std::string>()
                                  : std::string();
    const Json& paragraphs = array_at(article, "paragraphs", article_at);
    for (size_t p = 0; p < paragraphs.size(); ++p) {
      const std::string paragraph_at = article_at + ".paragraphs[" + std::to_string(p) + "]";
      const Json& paragraph = paragraphs[p];
      if (!paragraph.is_object()) throw Error(paragraph_at + ": must be an object");
      const std::string context = string_at(paragraph, "context", paragraph_at);
      detail::utf8_decode(context, paragraph_at + ".context");  // valid UTF-8 or an Error
      const Json& qas = array_at(paragraph, "qas", paragraph_at);
      for (size_t q = 0; q < qas.size(); ++q) {
        const std::string where = paragraph_at + ".qas[" + std::to_string(q) + "]";
        try {
          SquadExample example = read_question(qas[q], title, context, where);
          if (!ids.insert(example.id).second) {
            throw Error(where + ": question id \"" + example.id + "\" appears twice");
          }
          if (qas[q].contains("is_impossible")) data.v2 = true;
          data.examples.push_back(std::move(example));
        } catch (const Error& e) {
          if (!options.skip_malformed) throw;
          data.skipped.push_back(e.what());
        }
      }
    }
  }
  return data;
}

std::string squad_normalize_answer(const std::string& text) {
  std::u32string joined;
  for (const auto& word : normalized_words(text)) {
    if (!joined.empty()) joined += U' ';
    joined += word;
  }
  return detail::utf8_encode(joined);
}

// The normalised texts are their words joined by single spaces, so equal words are equal texts.
double squad_exact_match(const std::string& prediction, const std::string& gold) {
  return normalized_words(prediction) == normalized_words(gold) ? 1.0 : 0.0;
}

double squad_f1(const std::string& prediction, const std::string& gold) {
  return f1_with_empty_rule(normalized_words(prediction), normalized_words(gold));
}

SquadScores squad_evaluate(const SquadDataset& data,
                           const std::map<std::string, std::string>& predictions) {
  SquadScores s;
  for (const SquadExample& example : data.examples) {
    auto it = predictions.find(example.id);
    if (it == predictions.end()) {
      if (data.v2) {
        throw Error(data.path + ": no prediction for question \"" + example.id +
                    "\" (SQuAD v2.0 scores every question)");
      }
      ++s.missing;
      ++s.total;
      continue;
    }
    if (!data.v2 && example.answers.empty()) {
      throw Error(data.path + ": question \"" + example.id +
                  "\" has no answer, which a SQuAD v1.1 file cannot score");
    }
    // Each text normalised once. v1.1 compares with every gold answer; v2.0 drops those that
    // normalise to nothing and scores an unanswerable question against "".
    const std::vector<std::u32string> prediction = normalized_words(it->second);
    std::vector<std::vector<std::u32string>> golds;
    for (const auto& answer : example.answers) {
      std::vector<std::u32string> gold = normalized_words(answer.text);
      if (!data.v2 || !gold.empty()) golds.push_back(std::move(gold));
    }
    if (golds.empty()) golds.emplace_back();
    double exact = 0, f1 = 0;
    for (const auto& gold : golds) {
      exact = std::max(exact, prediction == gold ? 1.0 : 0.0);
      f1 =
          std::max(f1, data.v2 ? f1_with_empty_rule(prediction, gold) : token_f1(prediction, gold));
    }
    if (data.v2) {
      const bool has_answer = !example.answers.empty();
      (has_answer ? s.has_answer_exact : s.no_answer_exact) += exact;
      (has_answer ? s.has_answer_f1 : s.no_answer_f1) += f1;
      ++(has_answer ? s.has_answer_total : s.no_answer_total);
    }
    s.exact += exact;
    s.f1 += f1;
    ++s.total;
  }
  auto percent = [](double sum, int64_t n) {
    return n > 0 ? 100.0 * sum / static_cast<double>(n) : 0.0;
  };
  s.exact = percent(s.exact, s.total);
  s.f1 = percent(s.f1, s.total);
  s.has_answer_exact = percent(s.has_answer_exact, s.has_answer_total);
  s.has_answer_f1 = percent(s.has_answer_f1, s.has_answer_total);
  s.no_answer_exact = percent(s.no_answer_exact, s.no_answer_total);
  s.no_answer_f1 = percent(s.no_answer_f1, s.no_answer_total);
  return s;
}

}  // namespace adaptertune
