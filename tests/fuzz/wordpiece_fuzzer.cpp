// Fuzz target for the WordPiece tokenizer (Unicode cleaning, accents, CJK, punctuation, special
// tokens written in the text, greedy longest-match pieces and pair truncation) on arbitrary bytes,
// with a small vocabulary built in. Input: the first byte picks the casing and the length budget;
// the rest is split at the first 0xFF byte (not valid UTF-8 anywhere) into text and text_pair.
// Any exception other than adaptertune::Error, any crash and any sanitizer report is a bug.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adaptertune/error.h"
#include "adaptertune/text/wordpiece.h"

namespace {

const adaptertune::WordPieceTokenizer& tokenizer(bool lowercase) {
  static const std::vector<std::string> vocabulary = {
      "[PAD]",  "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "the", "un", "##aff",
      "##able", "##s",   "##a",   "##b",   ",",      ".", "!", "?",   "中", "##ing",
      "run",    "é",     "e",     "##é",   "'",      "-", "1", "##1", "x",  "##x"};
  static const adaptertune::WordPieceTokenizer cased(
      vocabulary,
      [] {
        adaptertune::WordPieceOptions o;
        o.lowercase = false;
        return o;
      }(),
      "fuzz-vocab");
  static const adaptertune::WordPieceTokenizer uncased(vocabulary, {}, "fuzz-vocab");
  return lowercase ? uncased : cased;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool lowercase = (data[0] & 1) != 0;
  const int64_t max_length = data[0] >> 1;  // 0..127; below 3 is refused with an Error
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto split = bytes.find('\xff');
  const std::string text = bytes.substr(0, split);
  std::optional<std::string> pair;
  if (split != std::string::npos) pair = bytes.substr(split + 1);
  try {
    tokenizer(lowercase).tokenize(text);
  } catch (const adaptertune::Error&) {
  }
  try {
    tokenizer(lowercase).encode(
        text, pair, max_length == 0 ? std::nullopt : std::optional<int64_t>(max_length));
  } catch (const adaptertune::Error&) {
  }
  return 0;
}
