#pragma once
// Private Unicode helpers over utf8proc, shared by the tokenizers.

#include <string>

namespace adaptertune::detail {

/// Decodes UTF-8; throws Error ("<context>: invalid UTF-8 at byte N") on malformed input.
std::u32string utf8_decode(const std::string& text, const std::string& context);
/// Throws as utf8_decode() does unless `text` is valid UTF-8: for the names and labels that are
/// written into JSON files and replies, which hold valid UTF-8 only.
void check_utf8(const std::string& text, const std::string& context);
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

/// Python's `str.isspace()`: what `str.split()` splits on (\t-\r, U+001C-U+001F, space, U+0085,
/// U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
bool is_python_space(char32_t c);
/// Python's `\w` in a Unicode regular expression: a letter or number (categories L*, N*) or '_'.
bool is_python_word_char(char32_t c);

/// Python's `str.lower()` of a whole string: full case mapping (U+0130 becomes "i" + U+0307) and
/// the Final_Sigma context rule (a capital sigma after a cased letter and not before one becomes
/// final sigma U+03C2, else U+03C3), so that tokenizers lower-case as the Python reference does.
std::u32string python_lower(const std::u32string& text);

/// Removes the combining marks (Mn) after NFD: "café" → "cafe".
std::string strip_accents(const std::string& text);

}  // namespace adaptertune::detail
