#pragma once
// Line and field splitting shared by the task file readers (GLUE's TSV, a user's CSV/TSV/JSON
// lines, plain lines on stdin), so that they treat line ends and byte-order marks alike.

#include <string>
#include <string_view>
#include <vector>

namespace adaptertune::detail {

/// `contents` without a UTF-8 byte-order mark at its start (Excel and Notepad write one; Python's
/// pandas and datasets skip it).
std::string_view without_byte_order_mark(std::string_view contents);

/// The lines of `contents` without their CR LF / LF ends and without a UTF-8 byte-order mark at
/// the start. A final line end makes no empty last line.
std::vector<std::string> split_lines(std::string_view contents);

/// The TAB-separated fields of `line` (quotes are literal).
std::vector<std::string> split_tabs(const std::string& line);

/// Whether `text` is empty or only white space.
bool is_blank(const std::string& text);

}  // namespace adaptertune::detail
