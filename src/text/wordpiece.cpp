#include "adaptertune/text/wordpiece.h"

#include <algorithm>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "special_tokens.h"
#include "unicode.h"

namespace adaptertune {
namespace {

// One token per line, LF or CR LF ended; a final line end makes no empty last token.
std::vector<std::string> read_vocabulary(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<std::string> tokens;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    tokens.push_back(std::move(line));
    start = end + 1;
  }
  if (tokens.empty()) throw Error(path + ": vocabulary is empty");
  return tokens;
}

// Python's str.split(): after cleaning, U+2028 and U+2029 still separate words.
void split_on_whitespace(const std::u32string& text, std::vector<std::u32string>& out) {
  std::u32string current;
  for (char32_t c : text) {
    if (detail::is_python_space(c)) {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) out.push_back(std::move(current));
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(const std::string& vocab_path, WordPieceOptions options)
    : WordPieceTokenizer(read_vocabulary(vocab_path), std::move(options), vocab_path) {}

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocabulary,
                                       WordPieceOptions options, const std::string& source)
    : options_(std::move(options)), vocabulary_(std::move(vocabulary)) {
  for (size_t i = 0; i < vocabulary_.size(); ++i) {
    // Input text is valid UTF-8, so a token that is not could never match (Hugging Face's
    // load_vocab() fails to decode such a file).
    detail::check_utf8(vocabulary_[i], source + ":" + std::to_string(i + 1));
    // A repeated token would make two ids decode alike and only one of them reachable.
    auto [it, added] = ids_.emplace(vocabulary_[i], static_cast<int64_t>(i));
    if (!added) {
      throw Error(source + ":" + std::to_string(i + 1) + ": token \"" + vocabulary_[i] +
                  "\" repeats line " + std::to_string(it->second + 1));
    }
  }
  auto special = [&](const std::string& token) {
    auto it = ids_.find(token);
    if (it == ids_.end()) {
      throw Error(source + ": vocabulary has no special token \"" + token + "\"");
    }
    special_tokens_.push_back(token);
    return it->second;
  };
  unk_id_ = special(options_.unk_token);
  cls_id_ = special(options_.cls_token);
  sep_id_ = special(options_.sep_token);
  pad_id_ = special(options_.pad_token);
  mask_id_ = special(options_.mask_token);
  detail::sort_longest_first(special_tokens_);
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  // Special tokens written in the text are kept whole; the text around them is tokenized.
  std::vector<std::string> words;
  detail::split_on_special_tokens(
      text, special_tokens_,
      [&](const std::string& segment) {
        std::vector<std::string> basic;
        basic_tokenize_into(segment, basic);
        for (const auto& word : basic) {
          for (auto& piece : wordpiece(word)) words.push_back(std::move(piece));
        }
      },
      [&](const std::string& special) { words.push_back(special); });
  return words;
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(const std::string& text) const {
  std::vector<std::string> words;
  basic_tokenize_into(text, words);
  return words;
}

void WordPieceTokenizer::basic_tokenize_into(const std::string& text,
                                             std::vector<std::string>& words) const {
  std::u32string cleaned;
  for (char32_t c : detail::utf8_decode(text, "tokenizer input")) {
    if (c == 0 || c == 0xFFFD || detail::is_control(c)) continue;
    if (detail::is_whitespace(c)) {
      cleaned.push_back(U' ');
    } else if (options_.tokenize_chinese_chars && detail::is_cjk(c)) {
      cleaned += U' ';
      cleaned.push_back(c);
      cleaned += U' ';
    } else {
      cleaned.push_back(c);
    }
  }
  const std::u32string normalized =
      detail::utf8_decode(detail::nfc(detail::utf8_encode(cleaned)), "tokenizer input");
  std::vector<std::u32string> raw_words;
  split_on_whitespace(normalized, raw_words);
  const bool strip = options_.strip_accents.value_or(options_.lowercase);
  for (std::u32string word : raw_words) {
    // Per whitespace-separated word, as the reference does: the final-sigma rule looks at the
    // word's own letters only.
    if (options_.lowercase) word = detail::python_lower(word);
    if (strip) {
      word =
          detail::utf8_decode(detail::strip_accents(detail::utf8_encode(word)), "tokenizer input");
    }
    // Every punctuation character becomes a word of its own.
    std::u32string current;
    for (char32_t c : word) {
      if (detail::is_punctuation(c)) {
        if (!current.empty()) words.push_back(detail::utf8_encode(current));
        current.clear();
        words.push_back(detail::utf8_encode(c));
      } else {
        current.push_back(c);
      }
    }
    if (!current.empty()) words.push_back(detail::utf8_encode(current));
  }
}

std::vector<std::string> WordPieceTokenizer::wordpiece(const std::string& word) const {
  const std::u32string chars = detail::utf8_decode(word, "wordpiece");
  if (static_cast<int64_t>(chars.size()) > options_.max_input_chars_per_word) {
    return {options_.unk_token};
  }
  std::vector<std::string> pieces;
  size_t start = 0;
  while (start < chars.size()) {
    size_t end = chars.size();
    std::string match;
    for (; end > start; --end) {
      std::string candidate = detail::utf8_encode(chars.substr(start, end - start));
      if (start > 0) candidate = "##" + candidate;
      if (ids_.count(candidate)) {
        match = std::move(candidate);
        break;
      }
    }
    if (match.empty()) return {options_.unk_token};
    pieces.push_back(std::move(match));
    start = end;
  }
  return pieces;
}

Tokenizer::VocabularyFile WordPieceTokenizer::vocabulary_file() const {
  VocabularyFile file{"vocab.txt", {}};
  for (const auto& token : vocabulary_) file.contents += token + "\n";
  return file;
}

int64_t WordPieceTokenizer::token_to_id(const std::string& token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? unk_id_ : it->second;
}

std::string WordPieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                std::to_string(vocab_size()) + ")");
  }
  return vocabulary_[static_cast<size_t>(id)];
}

}  // namespace adaptertune
