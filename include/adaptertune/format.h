#pragma once
/// @file format.h
/// Numbers as reports show them, lists as messages show them, and JSON as files and output lines
/// hold it.

#include <cstdint>
#include <string>
#include <string_view>
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

/// `text` when it has at most `max_bytes` bytes; else its start (a third of `max_bytes`) and its
/// end (an eighth) around "... (N bytes left out) ...", cut between UTF-8 sequences. How Error's
/// message, an error line and a server's reply show a message that quotes a huge input (a task
/// name of a megabyte): the start names the source and the end says what was expected. Cut to
/// about half the limit, an elided message can be quoted in another (a path and a line number put
/// before it) and stay under the limit, so that it is not cut again and its count not lost.
std::string elided(const std::string& text, size_t max_bytes = 4096);

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

/// The deepest nesting of arrays and objects in JSON that the library, the CLI and the server
/// read: far deeper than anything they read (a SQuAD file nests 9 levels), and shallow enough that
/// no value parsed from it exhausts a thread's stack, since copying, comparing and writing a JSON
/// value recurse once per level (a request nesting 100,000 arrays crashed the server).
constexpr int kMaxJsonNesting = 100;

/// Throws Error, "SOURCE: JSON nested deeper than 100 levels of arrays and objects (at byte N)"
/// (without "SOURCE: " when `source` is empty), where `text`, read as JSON, opens an array or
/// object deeper than kMaxJsonNesting. Only the nesting is looked at (brackets inside strings do
/// not count); the parser judges the rest. How every JSON text from outside is checked before it
/// is parsed.
void check_json_nesting(std::string_view text, const std::string& source);

}  // namespace adaptertune
