#include "adaptertune/error.h"

#include "adaptertune/format.h"

namespace adaptertune {

Error::Error(const std::string& message) : std::runtime_error(elided(message)) {}

}  // namespace adaptertune
