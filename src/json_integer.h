#pragma once
// The one rule for reading a 64-bit integer out of a parsed JSON value, apart from json_util.h so
// that files which name their own JSON type (the run files' ordered_json) can use it too.

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

namespace adaptertune::detail {

/// `value` as a 64-bit integer: a JSON integer, or a whole float (`3.0`), that int64_t holds;
/// std::nullopt for anything else. nlohmann/json keeps integers above INT64_MAX as unsigned and
/// would wrap them to negatives on get<int64_t>(), so every integer read goes through here.
/// A template, for nlohmann::ordered_json too (the run files keep their keys in order).
template <typename AnyJson>
std::optional<int64_t> integer_value(const AnyJson& value) {
  if (value.is_number_unsigned()) {
    const uint64_t number = value.template get<uint64_t>();
    if (number > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(number);
  }
  if (value.is_number_integer()) return value.template get<int64_t>();
  // A whole float (`3.0`, or an integer literal too large for 64 bits, which the parser reads as
  // one) is taken only where int64_t holds it: converting one beyond is undefined behaviour.
  constexpr double kLimit = 9.2e18;  // below 2^63
  if (!value.is_number_float()) return std::nullopt;
  const double number = value.template get<double>();
  if (std::floor(number) != number || std::fabs(number) > kLimit) return std::nullopt;
  return static_cast<int64_t>(number);
}

}  // namespace adaptertune::detail
