#pragma once
/// @file tokenizer_files.h
/// A model directory's tokenizer: `vocab.txt` (WordPiece) or `spiece.model` (SentencePiece),
/// with Hugging Face's `tokenizer_config.json`.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "adaptertune/text/tokenizer.h"

namespace adaptertune {

/// A WordPiece (`vocab.txt`) or SentencePiece (`spiece.model`) tokenizer from one file.
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path, bool sentencepiece,
                                               bool lowercase);

/// The tokenizer of model directory `directory`: `vocab.txt`, else `spiece.model`. It lower-cases
/// when `lowercase` says so, else as `tokenizer_config.json`'s `do_lower_case` says, else (no
/// such file or key, as in older BERT directories) it does. Throws Error naming the directory
/// when it has neither vocabulary file, or the file when tokenizer_config.json is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& directory,
                                          std::optional<bool> lowercase = std::nullopt);

/// Writes `tokenizer`'s vocabulary file and a `tokenizer_config.json` (`do_lower_case`,
/// `tokenizer_class`, and `model_max_length` when given) into `directory`, so that the directory
/// is a model that load_tokenizer() and Hugging Face's AutoTokenizer read back with the same
/// behaviour. Each file is written atomically.
void save_tokenizer(const Tokenizer& tokenizer, const std::string& directory,
                    std::optional<int64_t> model_max_length = std::nullopt);

}  // namespace adaptertune
