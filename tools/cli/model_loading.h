#pragma once
// Helpers the subcommands share: the tokenizer of a model directory, devices.

#include <memory>
#include <optional>
#include <string>

#include "adaptertune/text/tokenizer.h"

namespace adaptertune::cli {

/// The tokenizer of model directory `directory` (vocab.txt, else spiece.model). Lower-casing is
/// `lowercase` when given, else the directory's tokenizer_config.json `do_lower_case`, else on.
std::unique_ptr<Tokenizer> tokenizer_for_model(const std::string& directory,
                                               std::optional<bool> lowercase = std::nullopt);

/// A WordPiece (vocab.txt) or SentencePiece (spiece.model) tokenizer for a file.
std::unique_ptr<Tokenizer> tokenizer_for_file(const std::string& path, bool sentencepiece,
                                              bool lowercase);

/// "cpu", "cuda", or "auto" (cuda when available).
std::string resolve_device(const std::string& device);

}  // namespace adaptertune::cli
