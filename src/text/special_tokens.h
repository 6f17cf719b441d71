#pragma once
// Splitting text at special tokens written in it ("[MASK]", "[SEP]", …), shared by the tokenizers.

#include <functional>
#include <string>
#include <vector>

namespace adaptertune::detail {

/// Walks `text` left to right: every stretch between special tokens goes to `on_text` (possibly
/// empty), every special token to `on_special`. `specials` must be sorted longest first, so that
/// a token that is a prefix of another does not win at the same position.
void split_on_special_tokens(const std::string& text, const std::vector<std::string>& specials,
                             const std::function<void(const std::string&)>& on_text,
                             const std::function<void(const std::string&)>& on_special);

/// Sorts special tokens longest first (the order split_on_special_tokens() wants).
void sort_longest_first(std::vector<std::string>& specials);

}  // namespace adaptertune::detail
