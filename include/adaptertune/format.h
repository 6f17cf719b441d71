#pragma once
/// @file format.h
/// Numbers as reports show them.

#include <cstdint>
#include <string>

namespace adaptertune {

/// `value` in decimal with its digits grouped in threes by commas: "11,072,770", "-1,234", "999".
std::string with_commas(int64_t value);

}  // namespace adaptertune
