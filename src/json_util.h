#pragma once
// Private helpers for reading typed config structs from JSON with errors that name the source and
// key. nlohmann/json stays out of the public headers.

#include <functional>
#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "json_integer.h"

namespace adaptertune::detail {

using Json = nlohmann::json;

/// Parses `text`; a syntax error becomes Error naming `source` and the byte offset.
Json parse_json(const std::string& text, const std::string& source);

/// AdapterHub's config files (adapter_config.json, adapter_fusion_config.json) keep the settings
/// under "config": that member when `document` has one, else `document` itself.
Json adapterhub_settings(const Json& document);

/// Reads the keys of one JSON object into a struct. Each `read_*` call consumes a key; finish()
/// throws for keys that nobody read, so that typos ("hiden_size") never pass silently.
class JsonObjectReader {
 public:
  JsonObjectReader(const Json& object, std::string source);

  bool has(const std::string& key) const;
  void read(const std::string& key, int64_t& out);
  void read(const std::string& key, double& out);
  void read(const std::string& key, bool& out);
  void read(const std::string& key, std::string& out);
  /// The raw value (for nested objects or values of several types); marks the key read.
  const Json* take(const std::string& key);
  /// Throws Error naming the first of `keys` that the object lacks.
  void require(std::initializer_list<const char*> keys) const;
  /// Marks keys as known but ignored (e.g. Hugging Face's bookkeeping keys).
  void ignore(std::initializer_list<const char*> keys);
  /// Throws Error listing the keys that were never read.
  void finish() const;

  [[noreturn]] void fail(const std::string& key, const std::string& expected) const;
  const std::string& source() const { return source_; }

 private:
  const Json& object_;
  std::string source_;
  std::set<std::string> consumed_;
};

}  // namespace adaptertune::detail
