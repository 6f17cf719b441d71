// Fuzz target for the SQuAD reader and scorer: parse strict and skipping malformed questions,
// then score the questions against their own first answers and against a fixed text. Any
// exception other than adaptertune::Error, any crash and any sanitizer report is a bug.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string_view>

#include "adaptertune/error.h"
#include "adaptertune/tasks/squad.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace adaptertune;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const bool skip : {false, true}) {
    try {
      SquadReadOptions options;
      options.skip_malformed = skip;
      const SquadDataset squad = parse_squad(text, "fuzz.json", options);
      std::map<std::string, std::string> predictions;
      for (const auto& example : squad.examples) {
        predictions[example.id] =
            example.answers.empty() ? example.context : example.answers.front().text;
        squad_normalize_answer(example.question);
      }
      squad_evaluate(squad, predictions);
    } catch (const Error&) {
    }
  }
  return 0;
}
