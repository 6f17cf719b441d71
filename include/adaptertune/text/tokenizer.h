#pragma once
/// @file tokenizer.h
/// The tokenizer interface and what the model gets from it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace adaptertune {

/// One encoded example: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, unpadded (batches pad to
/// their longest sequence).
struct Encoding {
  std::vector<std::string> tokens;
  std::vector<int64_t> input_ids;
  /// 0 for `[CLS] a [SEP]`, 1 for `b [SEP]`.
  std::vector<int64_t> token_type_ids;
  /// All ones (there is no padding in an Encoding).
  std::vector<int64_t> attention_mask;
  /// Tokens removed by truncation (0 when the example fitted).
  int64_t truncated_tokens = 0;
};

/// A subword tokenizer with BERT-style special tokens.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// Text → subword tokens, without special tokens added (special tokens written literally in
  /// the text, like "[MASK]", are kept whole).
  virtual std::vector<std::string> tokenize(const std::string& text) const = 0;
  /// A token's id; the unknown token's id for tokens outside the vocabulary.
  virtual int64_t token_to_id(const std::string& token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;
  virtual int64_t vocab_size() const = 0;

  virtual int64_t cls_id() const = 0;
  virtual int64_t sep_id() const = 0;
  virtual int64_t pad_id() const = 0;
  virtual int64_t unk_id() const = 0;
  virtual int64_t mask_id() const = 0;

  /// Whether the tokenizer lower-cases its input (`do_lower_case` in tokenizer_config.json).
  virtual bool lowercase() const = 0;

  /// The file that defines the vocabulary, as it belongs in a model directory.
  struct VocabularyFile {
    /// "vocab.txt" (WordPiece) or "spiece.model" (SentencePiece).
    std::string name;
    std::string contents;
  };
  virtual VocabularyFile vocabulary_file() const = 0;

  /// Encodes one sentence or a pair. With `max_length`, the result has at most that many tokens
  /// (special tokens included), truncated "longest first" as the Python tokenizers do: one token
  /// at a time from the end of the longer sequence, from the second when both are equally long.
  /// Throws Error when `max_length` cannot even hold the special tokens.
  Encoding encode(const std::string& text,
                  const std::optional<std::string>& text_pair = std::nullopt,
                  std::optional<int64_t> max_length = std::nullopt) const;
};

/// Truncates `a` and `b` (b may be null) "longest first" until `a.size() + b.size() <= budget`.
/// Returns the number of tokens removed.
int64_t truncate_longest_first(std::vector<std::string>& a, std::vector<std::string>* b,
                               int64_t budget);

}  // namespace adaptertune
