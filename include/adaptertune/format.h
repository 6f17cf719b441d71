#pragma once
/// @file format.h
/// Numbers as reports show them, lists as messages show them, and JSON as files and output lines
/// hold it.

#include <cstdint>
#include <string>
#include <vector>

namespace adaptertune {

/// `value` in decimal with its digits grouped in threes by commas: "11,072,770", "-1,234", "999".
std::string with_commas(int64_t value);

/// `seconds` as hours, minutes and seconds, "H:MM:SS", rounded down: 3725.9 -> "1:02:05",
/// 59 -> "0:00:59"; a negative or not finite value (no estimate yet) -> "0:00:00". How progress
/// lines show an estimate of the time left.
std::string format_duration(double seconds);

/// `value` as printf's "%g" writes it, six significant digits: 16, 0.001, 1e+300, nan. How error
/// messages show a number that was given (std::to_string writes 1e300 with 301 digits).
std::string format_number(double value);

/// `parts` in order with `separator` between them: {"a", "b", "c"} -> "a, b, c"; "" for none.
/// How error messages list names.
std::string joined(const std::vector<std::string>& parts, const std::string& separator = ", ");

/// `json` (an nlohmann::json or nlohmann::ordered_json) as JSON text, `indent` spaces per level
/// (-1: one line). A string that is not valid UTF-8 keeps its valid parts and shows U+FFFD for each
/// invalid byte: file paths reach run.json, results.json and the tools' result lines, and a POSIX
/// path is any bytes, where nlohmann's plain dump() throws in the middle of a write. How the
/// library, the CLI and the server write every JSON file, line and reply.
/// A template on the JSON type, so that this header needs no nlohmann include.
template <typename BasicJson>
std::string json_text(const BasicJson& json, int indent = -1) {
  return json.dump(indent, ' ', /*ensure_ascii=*/false, BasicJson::error_handler_t::replace);
}

}  // namespace adaptertune
