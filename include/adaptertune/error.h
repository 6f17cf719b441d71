#pragma once
/// @file error.h
/// The one exception type that adaptertune throws for its own errors.

#include <stdexcept>
#include <string>

namespace adaptertune {

/// Thrown for every error that the library detects itself: invalid configuration values, malformed
/// files, wrong tensor shapes. The message names the file, key or shape that is wrong and what was
/// expected, so that it can be shown to a user as it is.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace adaptertune
