#pragma once
// Private Unicode helpers over utf8proc, shared by the tokenizers.

#include <string>

namespace adaptertune::detail {

/// Decodes UTF-8; throws Error ("<context>: invalid UTF-8 at byte N") on malformed input.
std::u32string utf8_decode(const std::string& text, const std::string& context);
std::string utf8_encode(const std::u32string& text);
std::string utf8_encode(char32_t c);

/// Normalisation forms, on valid UTF-8 without NUL characters.
std::string nfc(const std::string& text);
std::string nfd(const std::string& text);
std::string nfkd(const std::string& text);

bool is_whitespace(char32_t c);      // space, \t, \n, \r, or category Zs
bool is_control(char32_t c);         // category C*, except \t, \n, \r
bool is_punctuation(char32_t c);     // category P*, or ASCII 33-47, 58-64, 91-96, 123-126
bool is_combining_mark(char32_t c);  // category Mn
bool is_cjk(char32_t c);             // CJK Unified Ideographs blocks, as in BERT
char32_t to_lower(char32_t c);

/// Removes the combining marks (Mn) after NFD: "café" → "cafe".
std::string strip_accents(const std::string& text);

}  // namespace adaptertune::detail
