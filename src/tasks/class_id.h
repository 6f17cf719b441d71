#pragma once
// The one rule for reading a prediction or gold value, held as a double, as a class id: the
// metrics and the GLUE submission writer both take values in that form.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace adaptertune::detail {

/// `value` as a class id of a task with `num_labels` classes, or nothing when it is not a whole
/// number in [0, num_labels). Checked as a double before any conversion: converting nan or a
/// value beyond int64_t is undefined.
inline std::optional<int64_t> class_id(double value, size_t num_labels) {
  if (!(value >= 0 && value < static_cast<double>(num_labels)) || std::floor(value) != value) {
    return std::nullopt;
  }
  return static_cast<int64_t>(value);
}

}  // namespace adaptertune::detail
