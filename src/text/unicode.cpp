#include "unicode.h"

#include <cstdlib>
#include <memory>

#include <utf8proc.h>

#include "adaptertune/error.h"

namespace adaptertune::detail {
namespace {

using Normalizer = utf8proc_uint8_t* (*)(const utf8proc_uint8_t*);

std::string normalize(const std::string& text, Normalizer form) {
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> out(
      form(reinterpret_cast<const utf8proc_uint8_t*>(text.c_str())), &std::free);
  if (!out) throw Error("Unicode normalisation failed (invalid UTF-8?)");
  return reinterpret_cast<const char*>(out.get());
}

}  // namespace

void check_utf8(const std::string& text, const std::string& context) {
  utf8_decode(text, context);
}

std::u32string utf8_decode(const std::string& text, const std::string& context) {
  std::u32string out;
  out.reserve(text.size());
  const auto* data = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t offset = 0;
  const auto size = static_cast<utf8proc_ssize_t>(text.size());
  while (offset < size) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(data + offset, size - offset, &cp);
    if (n <= 0 || cp < 0) {
      throw Error(context + ": invalid UTF-8 at byte " + std::to_string(offset));
    }
    out.push_back(static_cast<char32_t>(cp));
    offset += n;
  }
  return out;
}

std::string utf8_encode(char32_t c) {
  utf8proc_uint8_t buffer[4];
  auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buffer);
  return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

std::string utf8_encode(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) out += utf8_encode(c);
  return out;
}

std::string nfc(const std::string& text) {
  return normalize(text, utf8proc_NFC);
}
std::string nfd(const std::string& text) {
  return normalize(text, utf8proc_NFD);
}
std::string nfkd(const std::string& text) {
  return normalize(text, utf8proc_NFKD);
}

bool is_whitespace(char32_t c) {
  if (c == U' ' || c == U'\t' || c == U'\n' || c == U'\r') return true;
  return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_ZS;
}

bool is_control(char32_t c) {
  if (c == U'\t' || c == U'\n' || c == U'\r') return false;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    default:
      return false;
  }
}

bool is_python_word_char(char32_t c) {
  if (c == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
      (c >= 123 && c <= 126)) {
    return true;
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_combining_mark(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c)) == UTF8PROC_CATEGORY_MN;
}

bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

char32_t to_lower(char32_t c) {
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
}

std::string strip_accents(const std::string& text) {
  std::u32string out;
  for (char32_t c : utf8_decode(nfd(text), "strip_accents")) {
    if (!is_combining_mark(c)) out.push_back(c);
  }
  return utf8_encode(out);
}

bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

namespace {

// Unicode's Case_Ignorable: categories Mn, Me, Cf, Lm, Sk, and Word_Break MidLetter, MidNumLet
// or Single_Quote. Checked against CPython's str.lower() for every code point
// (tests/python/check_python_lower.py).
bool is_case_ignorable(char32_t c) {
  switch (c) {
    case 0x27:
    case 0x2E:
    case 0x3A:
    case 0xB7:
    case 0x387:
    case 0x55F:
    case 0x5F4:
    case 0x2018:
    case 0x2019:
    case 0x2024:
    case 0x2027:
    case 0xFE13:
    case 0xFE52:
    case 0xFE55:
    case 0xFF07:
    case 0xFF0E:
    case 0xFF1A:
      return true;
    default:
      break;
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      return false;
  }
}

// Unicode's Cased: Lu, Ll, Lt, and the Other_Lowercase / Other_Uppercase characters outside the
// case-ignorable categories (ordinal indicators, Roman numerals, circled and squared letters).
bool is_cased(char32_t c) {
  static const char32_t kOtherCased[][2] = {
      {0x00AA, 0x00AA},   {0x00BA, 0x00BA},   {0x2160, 0x217F},  {0x24B6, 0x24E9},
      {0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189}};
  for (const auto& range : kOtherCased) {
    if (c >= range[0] && c <= range[1]) return true;
  }
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
      return true;
    default:
      return false;
  }
}

// CPython's rule: final when \p{cased} \p{case-ignorable}* U+03A3 and not followed by
// \p{case-ignorable}* \p{cased}.
bool is_final_sigma(const std::u32string& text, size_t at) {
  size_t j = at;
  while (j > 0 && is_case_ignorable(text[j - 1])) --j;
  if (j == 0 || !is_cased(text[j - 1])) return false;
  size_t k = at + 1;
  while (k < text.size() && is_case_ignorable(text[k])) ++k;
  return k == text.size() || !is_cased(text[k]);
}

}  // namespace

std::u32string python_lower(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    if (c == 0x130) {
      // The one unconditional multi-character lower-case mapping (SpecialCasing.txt).
      out += U"i\u0307";
    } else if (c == 0x3A3) {
      out.push_back(is_final_sigma(text, i) ? 0x3C2 : 0x3C3);
    } else {
      out.push_back(to_lower(c));
    }
  }
  return out;
}

}  // namespace adaptertune::detail
