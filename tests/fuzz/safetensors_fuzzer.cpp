// Fuzz target for the safetensors header parser. Built with libFuzzer when the compiler is clang
// (target safetensors_fuzzer: ./safetensors_fuzzer tests/data/safetensors), and linked with
// replay_main.cpp into a sanitizer-instrumented program that replays the corpus under ctest.
// Any exception other than adaptertune::Error, any crash and any sanitizer report is a bug.

#include <cstddef>
#include <cstdint>

#include "adaptertune/error.h"
#include "adaptertune/io/safetensors_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    adaptertune::parse_safetensors_header(data, size, "fuzz-input");
  } catch (const adaptertune::Error&) {
    // Rejecting malformed input with the library's error is the expected outcome.
  }
  return 0;
}
