// Fuzz target for the JSON-lines request reader (`predict --input FILE.jsonl`, the server's
// bodies). Any exception other than adaptertune::Error, any crash and any sanitizer report is a
// bug.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "adaptertune/error.h"
#include "adaptertune/inference/task_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    adaptertune::parse_task_requests(std::string_view(reinterpret_cast<const char*>(data), size),
                                     "fuzz.jsonl");
  } catch (const adaptertune::Error&) {
  }
  return 0;
}
