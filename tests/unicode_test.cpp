// The private Unicode helpers that make the tokenizers lower-case and split words as Python does,
// compared with CPython for every code point (tests/python/python_lower_expected.json, made by
// make_python_lower_expectations.py).

#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "text/unicode.h"

namespace adaptertune::detail {
namespace {

const std::string kExpected =
    std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../python/python_lower_expected.json";

bool in_ranges(const nlohmann::json& ranges, char32_t c) {
  for (const auto& range : ranges) {
    if (c >= range[0].get<char32_t>() && c <= range[1].get<char32_t>()) return true;
  }
  return false;
}

TEST(PythonLower, FinalSigmaMatchesCPythonForEveryCodePoint) {
  std::ifstream in(kExpected);
  ASSERT_TRUE(in) << kExpected;
  const auto expected = nlohmann::json::parse(in);
  int mismatches = 0;
  for (char32_t c = 0; c < 0x110000; ++c) {
    if ((c >= 0xD800 && c <= 0xDFFF) || in_ranges(expected["unassigned"], c)) continue;
    const bool final_after = in_ranges(expected["final_after"], c);
    const bool looks_past = final_after || in_ranges(expected["skipped"], c);
    const std::u32string before = python_lower(std::u32string{c, 0x3A3});
    const std::u32string around = python_lower(std::u32string{U'A', 0x3A3, c, U'B'});
    const bool ok = (before.back() == 0x3C2) == final_after && (around[1] == 0x3C3) == looks_past;
    if (!ok && ++mismatches <= 10) ADD_FAILURE() << "code point U+" << std::hex << uint32_t(c);
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(PythonLower, SigmaRulesAndFullMappings) {
  EXPECT_EQ(python_lower(U"ΟΔΟΣ"), U"οδος");
  EXPECT_EQ(python_lower(U"Σ"), U"σ");        // nothing cased before it
  EXPECT_EQ(python_lower(U"ΣΑΣ."), U"σας.");  // '.' is case-ignorable
  EXPECT_EQ(python_lower(U"ΑΣ'Β"), U"ασ'β");  // a cased letter follows past the apostrophe
  EXPECT_EQ(python_lower(U"İ"), U"i\u0307");
  EXPECT_EQ(python_lower(U"ÀB"), U"àb");
}

TEST(PythonSpace, MatchesStrIsspace) {
  std::ifstream in(kExpected);
  ASSERT_TRUE(in) << kExpected;
  const auto expected = nlohmann::json::parse(in);
  for (char32_t c = 0; c < 0x110000; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    EXPECT_EQ(is_python_space(c), in_ranges(expected["space"], c))
        << "U+" << std::hex << uint32_t(c);
  }
}

}  // namespace
}  // namespace adaptertune::detail
