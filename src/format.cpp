#include "adaptertune/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "adaptertune/error.h"

namespace adaptertune {

std::string with_commas(int64_t value) {
  const std::string text = std::to_string(value);
  const size_t sign = value < 0 ? 1 : 0;
  std::string out = text.substr(0, sign);
  const size_t digits = text.size() - sign;
  for (size_t i = 0; i < digits; ++i) {
    if (i > 0 && (digits - i) % 3 == 0) out += ',';
    out += text[sign + i];
  }
  return out;
}

std::string format_duration(double seconds) {
  // Clamped first: a cast of NaN or of a value beyond long long's range is undefined.
  const double clamped = std::isfinite(seconds) ? std::min(std::max(seconds, 0.0), 1e15) : 0.0;
  const auto s = static_cast<long long>(clamped);
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", s / 3600, (s / 60) % 60, s % 60);
  return buffer;
}

std::string format_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

std::string joined(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

std::string elided(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  // Back to the start of the UTF-8 sequence that holds byte `at`, so that no sequence is split.
  auto sequence_start = [&](size_t at) {
    while (at > 0 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
    return at;
  };
  const size_t head_end = sequence_start(max_bytes / 3);
  const size_t tail_start = sequence_start(text.size() - max_bytes / 8);
  return text.substr(0, head_end) + "... (" +
         with_commas(static_cast<int64_t>(tail_start - head_end)) + " bytes left out) ..." +
         text.substr(tail_start);
}

void check_json_nesting(std::string_view text, const std::string& source) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, a quote included
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonNesting) {
        throw Error((source.empty() ? "" : source + ": ") + "JSON nested deeper than " +
                    std::to_string(kMaxJsonNesting) + " levels of arrays and objects (at byte " +
                    std::to_string(i) + ")");
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

}  // namespace adaptertune
