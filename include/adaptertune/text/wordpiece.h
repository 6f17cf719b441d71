#pragma once
/// @file wordpiece.h
/// BERT's WordPiece tokenizer, with the behaviour of Hugging Face's Python `BertTokenizer`.

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "adaptertune/text/tokenizer.h"

namespace adaptertune {

/// Options of WordPieceTokenizer (Hugging Face BertTokenizer's defaults).
struct WordPieceOptions {
  /// Lower-case the text and strip accents (uncased vocabularies). Cased vocabularies: false.
  bool lowercase = true;
  /// Strip accents; by default (unset) whenever `lowercase` is on, as in BertTokenizer.
  std::optional<bool> strip_accents;
  /// Put spaces around CJK ideographs so that each becomes its own word.
  bool tokenize_chinese_chars = true;
  /// Words longer than this many characters become the unknown token.
  int64_t max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string mask_token = "[MASK]";
};

/// BERT tokenization in two stages.
///
/// Basic: the text must be valid UTF-8 (Error naming the byte offset otherwise). Special tokens
/// written in the text are split off and kept whole. The rest is cleaned (NUL, U+FFFD and control
/// characters dropped; whitespace becomes a space), CJK ideographs get spaces around them, the
/// text is NFC-normalised (utf8proc), split on whitespace; each word is lower-cased and
/// accent-stripped (NFD, combining marks dropped) when configured, then split on punctuation
/// (Unicode category P*, and the ASCII symbol ranges, which BERT counts as punctuation too).
///
/// WordPiece: each word is split greedily, longest match first, into vocabulary pieces, with `##`
/// on pieces that continue a word; a word with no split, or longer than
/// max_input_chars_per_word, becomes `[UNK]`.
///
/// Lower-casing uses utf8proc's simple case mapping; Python's `str.lower()` differs for a handful
/// of characters with multi-character lower case (e.g. U+0130).
class WordPieceTokenizer : public Tokenizer {
 public:
  /// Reads a `vocab.txt` (one token per line; id = line number - 1). Throws Error naming the file
  /// when it cannot be read or lacks a special token.
  WordPieceTokenizer(const std::string& vocab_path, WordPieceOptions options = {});
  /// From tokens in id order.
  WordPieceTokenizer(std::vector<std::string> vocabulary, WordPieceOptions options = {},
                     const std::string& source = "<vocabulary>");

  std::vector<std::string> tokenize(const std::string& text) const override;
  /// The basic stage alone: words after cleaning, case handling and punctuation splitting.
  std::vector<std::string> basic_tokenize(const std::string& text) const;
  /// The WordPiece stage alone, for one word.
  std::vector<std::string> wordpiece(const std::string& word) const;

  int64_t token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(vocabulary_.size()); }
  int64_t cls_id() const override { return cls_id_; }
  int64_t sep_id() const override { return sep_id_; }
  int64_t pad_id() const override { return pad_id_; }
  int64_t unk_id() const override { return unk_id_; }
  int64_t mask_id() const override { return mask_id_; }
  bool lowercase() const override { return options_.lowercase; }
  VocabularyFile vocabulary_file() const override;
  const WordPieceOptions& options() const { return options_; }

 private:
  void basic_tokenize_into(const std::string& text, std::vector<std::string>& words) const;

  WordPieceOptions options_;
  std::vector<std::string> vocabulary_;
  std::unordered_map<std::string, int64_t> ids_;
  std::vector<std::string> special_tokens_;
  int64_t cls_id_, sep_id_, pad_id_, unk_id_, mask_id_;
};

}  // namespace adaptertune
