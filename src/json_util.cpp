#include "json_util.h"

#include <sstream>

#include "adaptertune/format.h"

namespace adaptertune::detail {

Json parse_json(const std::string& text, const std::string& source) {
  check_json_nesting(text, source);
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw Error(source + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  } catch (const Json::exception& e) {
    // The parser's other complaint: a number beyond a double's range (1e400).
    throw Error(source + ": invalid JSON: " + e.what());
  }
}

JsonObjectReader::JsonObjectReader(const Json& object, std::string source)
    : object_(object), source_(std::move(source)) {
  if (!object_.is_object()) {
    throw Error(source_ + ": expected a JSON object, found " + object_.type_name());
  }
}

bool JsonObjectReader::has(const std::string& key) const {
  return object_.contains(key);
}

void JsonObjectReader::fail(const std::string& key, const std::string& expected) const {
  std::string found = object_.contains(key) ? json_text(object_.at(key)) : "nothing";
  if (found.size() > 80) found = found.substr(0, 77) + "...";
  throw Error(source_ + ": key '" + key + "' must be " + expected + ", found " + found);
}

const Json* JsonObjectReader::take(const std::string& key) {
  consumed_.insert(key);
  auto it = object_.find(key);
  return it == object_.end() ? nullptr : &*it;
}

void JsonObjectReader::read(const std::string& key, int64_t& out) {
  const Json* value = take(key);
  if (value == nullptr) return;
  const std::optional<int64_t> number = integer_value(*value);
  if (!number) fail(key, "an integer");
  out = *number;
}

void JsonObjectReader::read(const std::string& key, double& out) {
  const Json* value = take(key);
  if (value == nullptr) return;
  if (!value->is_number()) fail(key, "a number");
  out = value->get<double>();
}

void JsonObjectReader::read(const std::string& key, bool& out) {
  const Json* value = take(key);
  if (value == nullptr) return;
  if (!value->is_boolean()) fail(key, "true or false");
  out = value->get<bool>();
}

void JsonObjectReader::read(const std::string& key, std::string& out) {
  const Json* value = take(key);
  if (value == nullptr) return;
  if (!value->is_string()) fail(key, "a string");
  out = value->get<std::string>();
}

void JsonObjectReader::require(std::initializer_list<const char*> keys) const {
  for (const char* key : keys) {
    if (!object_.contains(key)) throw Error(source_ + ": key '" + key + "' is missing");
  }
}

void JsonObjectReader::ignore(std::initializer_list<const char*> keys) {
  for (const char* key : keys) consumed_.insert(key);
}

void JsonObjectReader::finish() const {
  std::string unknown;
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (consumed_.count(it.key()) == 0) unknown += (unknown.empty() ? "'" : ", '") + it.key() + "'";
  }
  if (!unknown.empty()) throw Error(source_ + ": unknown key(s) " + unknown);
}

Json adapterhub_settings(const Json& document) {
  if (document.is_object() && document.contains("config") && document["config"].is_object()) {
    return document["config"];
  }
  return document;
}

}  // namespace adaptertune::detail
