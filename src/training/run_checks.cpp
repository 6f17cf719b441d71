#include "run_checks.h"

#include <algorithm>
#include <cmath>

#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/bert_model.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "sha256.h"

namespace adaptertune::detail {
namespace {

[[noreturn]] void fail(const char* owner, const char* option, const std::string& range,
                       double value) {
  throw Error(std::string(owner) + ": " + option + " must be " + range + ", got " +
              format_number(value));
}

}  // namespace

void check_at_least(const char* owner, const char* option, int64_t value, int64_t min) {
  if (value < min) {
    fail(owner, option, "an integer >= " + std::to_string(min), static_cast<double>(value));
  }
}

void check_finite(const char* owner, const char* option, double value, double min, bool exclusive) {
  if (!std::isfinite(value) || value < min || (exclusive && value == min)) {
    fail(owner, option,
         std::string("a finite number ") + (exclusive ? "> " : ">= ") + format_number(min), value);
  }
}

void check_fraction(const char* owner, const char* option, double value) {
  if (!(value >= 0 && value <= 1)) fail(owner, option, "a number from 0 to 1", value);
}

void check_stacked_on(const BertModelImpl& bert, const std::optional<std::string>& adapter,
                      const std::vector<std::string>& stacked_on,
                      const std::vector<std::string>& trained, const std::string& label) {
  if (stacked_on.empty()) return;
  if (!adapter) throw Error(label + ": stacked_on needs an adapter to train on top");
  Stack::on_top_of(stacked_on, *adapter).check();  // none named twice
  for (const std::string& below : stacked_on) {
    bert.tasks().at(below);  // throws when the model has no such adapter
    if (std::find(trained.begin(), trained.end(), below) != trained.end()) {
      throw Error(label + ": stacked on \"" + below +
                  "\", which this run trains; an adapter stacked on stays frozen");
    }
  }
}

bool valid_loss_scale(double value) {
  int exponent = 0;
  return std::isfinite(value) && value >= 1 && std::frexp(value, &exponent) == 0.5;
}

std::string encodings_sha256(const std::vector<Encoding>& encodings) {
  Sha256 hash;
  for (const auto& e : encodings) {
    const auto count = static_cast<int64_t>(e.input_ids.size());
    hash.update(&count, sizeof count);
    hash.update(e.input_ids.data(), e.input_ids.size() * sizeof(e.input_ids[0]));
  }
  return hash.hex_digest();
}

}  // namespace adaptertune::detail
