#pragma once
/// @file format.h
/// Numbers as reports show them, and lists as messages show them.

#include <cstdint>
#include <string>
#include <vector>

namespace adaptertune {

/// `value` in decimal with its digits grouped in threes by commas: "11,072,770", "-1,234", "999".
std::string with_commas(int64_t value);

/// `parts` in order with `separator` between them: {"a", "b", "c"} -> "a, b, c"; "" for none.
/// How error messages list names.
std::string joined(const std::vector<std::string>& parts, const std::string& separator = ", ");

}  // namespace adaptertune
