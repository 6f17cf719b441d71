#include "adaptertune/fusion_config.h"

#include <cmath>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "json_util.h"

namespace adaptertune {

FusionConfig FusionConfig::dynamic() {
  return FusionConfig{};
}

FusionConfig FusionConfig::static_fusion() {
  FusionConfig config;
  config.value = false;
  config.regularization = false;
  config.value_initialized = false;
  return config;
}

FusionConfig FusionConfig::preset(const std::string& name) {
  if (name == "dynamic") return dynamic();
  if (name == "static") return static_fusion();
  throw Error("unknown fusion config \"" + name + "\" (expected \"dynamic\" or \"static\")");
}

void FusionConfig::validate() const {
  if (temperature) {
    throw Error(
        "FusionConfig: 'temperature' true (an annealed softmax temperature) is not implemented");
  }
  if (dropout_prob && !(*dropout_prob >= 0 && *dropout_prob < 1)) {
    throw Error("FusionConfig: 'dropout_prob' must be in [0, 1), got " +
                format_number(*dropout_prob));
  }
}

FusionConfig FusionConfig::from_json_string(const std::string& json, const std::string& source) {
  const detail::Json document = detail::adapterhub_settings(detail::parse_json(json, source));
  detail::JsonObjectReader reader(document, source);
  FusionConfig config;
  reader.read("key", config.key);
  reader.read("query", config.query);
  reader.read("value", config.value);
  reader.read("query_before_ln", config.query_before_ln);
  reader.read("regularization", config.regularization);
  reader.read("residual_before", config.residual_before);
  reader.read("temperature", config.temperature);
  reader.read("value_before_softmax", config.value_before_softmax);
  // AdapterHub types it as a string but writes true/false.
  if (const detail::Json* init = reader.take("value_initialized")) {
    if (!init->is_boolean()) reader.fail("value_initialized", "true or false");
    config.value_initialized = init->get<bool>();
  }
  if (const detail::Json* dropout = reader.take("dropout_prob"); dropout && !dropout->is_null()) {
    if (!dropout->is_number()) reader.fail("dropout_prob", "a number or null");
    config.dropout_prob = dropout->get<double>();
  }
  reader.finish();
  try {
    config.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return config;
}

std::string FusionConfig::to_json_string() const {
  detail::Json j = {
      {"key", key},
      {"query", query},
      {"value", value},
      {"query_before_ln", query_before_ln},
      {"regularization", regularization},
      {"residual_before", residual_before},
      {"temperature", temperature},
      {"value_before_softmax", value_before_softmax},
      {"value_initialized", value_initialized},
      {"dropout_prob", dropout_prob ? detail::Json(*dropout_prob) : detail::Json(nullptr)},
  };
  return json_text(j, 2) + "\n";
}

bool FusionConfig::operator==(const FusionConfig& o) const {
  return key == o.key && query == o.query && value == o.value &&
         query_before_ln == o.query_before_ln && regularization == o.regularization &&
         residual_before == o.residual_before && temperature == o.temperature &&
         value_before_softmax == o.value_before_softmax &&
         value_initialized == o.value_initialized && dropout_prob == o.dropout_prob;
}

}  // namespace adaptertune
