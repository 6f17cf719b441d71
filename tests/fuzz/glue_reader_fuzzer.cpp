// Fuzz target for the GLUE readers: the TSV parser (every task layout, strict and skipping
// malformed rows) and the plain-lines reader of `predict`'s stdin. Any exception other than
// adaptertune::Error, any crash and any sanitizer report is a bug. The first byte picks the task.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "adaptertune/error.h"
#include "adaptertune/tasks/glue.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& tasks = adaptertune::glue_tasks();
  const adaptertune::GlueTaskInfo& task = tasks[data[0] % tasks.size()];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    adaptertune::parse_glue_tsv(task, text, "fuzz.tsv");
  } catch (const adaptertune::Error&) {
  }
  try {
    adaptertune::GlueReadOptions skip;
    skip.skip_malformed = true;
    adaptertune::parse_glue_tsv(task, text, "fuzz.tsv", skip);
  } catch (const adaptertune::Error&) {
  }
  try {
    adaptertune::parse_text_lines(task, text, "stdin");
  } catch (const adaptertune::Error&) {
  }
  return 0;
}
