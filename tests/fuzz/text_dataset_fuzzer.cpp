// Fuzz target for the reader of one's own data sets: CSV (libcsv), TSV and JSON lines, for a
// classification task and a regression task, single texts and pairs, strict and skipping
// malformed rows, and the label collection of a training file. Any exception other than
// adaptertune::Error, any crash and any sanitizer report is a bug. The first byte picks the
// format and the options.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "adaptertune/error.h"
#include "adaptertune/tasks/text_dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace adaptertune;
  const uint8_t choice = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  static const char* const names[] = {"fuzz.csv", "fuzz.tsv", "fuzz.jsonl"};
  const char* path = names[choice % 3];
  TextFileOptions options;
  options.skip_malformed = (choice / 3) % 2 == 1;
  const bool pair = (choice / 6) % 2 == 1;
  if (pair) options.pair_column = "text_pair";
  TaskDescription task;
  task.name = "fuzz";
  task.sentence_pair = pair;
  if ((choice / 12) % 2 == 0) task.labels = {"0", "1", "neg", "pos"};
  try {
    parse_text_dataset(task, text, path, options);
  } catch (const Error&) {
  }
  try {
    text_file_format("fuzz.bin", TextFileFormat::kAuto);
  } catch (const Error&) {
  }
  return 0;
}
