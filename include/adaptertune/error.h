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
  /// `message` as what() returns it; one that quotes a huge input (a megabyte task name, a line of
  /// a file with no line breaks) keeps its start and end, as elided() in format.h cuts it, so that
  /// no what() is longer than about 4 KB.
  explicit Error(const std::string& message);
};

}  // namespace adaptertune
