#include "adaptertune/io/safetensors_format.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "json_util.h"

namespace adaptertune {
namespace {

// The reference implementation refuses headers over 100 MB; so do we, before parsing.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool is_unsigned_integer(const detail::Json& j) {
  return j.is_number_unsigned();
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
      {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};
  auto it = sizes.find(dtype);
  if (it == sizes.end()) {
    throw Error("unsupported dtype \"" + dtype +
                "\" (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");
  }
  return it->second;
}

SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size,
                                           const std::string& source) {
  if (size < 8) {
    throw Error(source + ": file is " + std::to_string(size) +
                " bytes, too short for the 8-byte header length (truncated?)");
  }
  const uint64_t header_length = read_le64(data);
  if (header_length > kMaxHeaderBytes) {
    throw Error(source + ": header length " + std::to_string(header_length) +
                " exceeds the 100 MB limit (not a safetensors file?)");
  }
  if (header_length > size - 8) {
    throw Error(source + ": header length " + std::to_string(header_length) +
                " runs past the end of the file (" + std::to_string(size) + " bytes; truncated?)");
  }
  const char* json_begin = reinterpret_cast<const char*>(data + 8);
  const std::string text(json_begin, json_begin + header_length);

  // nlohmann keeps the last of duplicate keys silently; a parser callback sees every key.
  std::set<std::string> top_level_keys;
  std::string duplicate;
  detail::Json::parser_callback_t on_event = [&](int depth, detail::Json::parse_event_t event,
                                                 detail::Json& parsed) {
    if (event == detail::Json::parse_event_t::key && depth == 1) {
      const std::string key = parsed.get<std::string>();
      if (!top_level_keys.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  check_json_nesting(text, source + ": header");
  detail::Json header;
  try {
    header = detail::Json::parse(text, on_event);
  } catch (const detail::Json::exception& e) {
    throw Error(source + ": header is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) throw Error(source + ": tensor \"" + duplicate + "\" appears twice");
  if (!header.is_object()) {
    throw Error(source + ": header must be a JSON object, found " + header.type_name());
  }

  SafetensorsHeader result;
  result.data_start = 8 + header_length;
  const uint64_t buffer_size = size - result.data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const detail::Json& value = it.value();
    if (name == "__metadata__") {
      if (!value.is_object()) throw Error(source + ": __metadata__ must be an object of strings");
      for (auto m = value.begin(); m != value.end(); ++m) {
        if (!m->is_string()) {
          throw Error(source + ": __metadata__ value of \"" + m.key() + "\" must be a string");
        }
        result.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string where = source + ": tensor \"" + name + "\"";
    if (!value.is_object()) throw Error(where + ": entry must be an object");
    for (auto field = value.begin(); field != value.end(); ++field) {
      if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets") {
        throw Error(where + ": unknown field \"" + field.key() + "\"");
      }
    }
    SafetensorsEntry entry;
    entry.name = name;
    if (!value.contains("dtype") || !value["dtype"].is_string()) {
      throw Error(where + ": missing or non-string \"dtype\"");
    }
    entry.dtype = value["dtype"].get<std::string>();
    size_t element_size = 0;
    try {
      element_size = safetensors_dtype_size(entry.dtype);
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
    if (!value.contains("shape") || !value["shape"].is_array()) {
      throw Error(where + ": missing \"shape\" array");
    }
    uint64_t elements = 1;
    for (const auto& dim : value["shape"]) {
      if (!is_unsigned_integer(dim)) {
        throw Error(where + ": shape " + json_text(value["shape"]) +
                    " must hold non-negative integers");
      }
      const uint64_t d = dim.get<uint64_t>();
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (d != 0 && elements > std::numeric_limits<uint64_t>::max() / d)) {
        throw Error(where + ": shape " + json_text(value["shape"]) + " is too large");
      }
      elements *= d;
      entry.shape.push_back(static_cast<int64_t>(d));
    }
    const detail::Json* offsets = value.contains("data_offsets") ? &value["data_offsets"] : nullptr;
    if (offsets == nullptr || !offsets->is_array() || offsets->size() != 2 ||
        !is_unsigned_integer((*offsets)[0]) || !is_unsigned_integer((*offsets)[1])) {
      throw Error(where + ": \"data_offsets\" must be [begin, end] with non-negative integers");
    }
    entry.begin = (*offsets)[0].get<uint64_t>();
    entry.end = (*offsets)[1].get<uint64_t>();
    if (entry.begin > entry.end) {
      throw Error(where + ": data_offsets [" + std::to_string(entry.begin) + ", " +
                  std::to_string(entry.end) + "] end before they begin");
    }
    if (entry.end > buffer_size) {
      throw Error(where + ": data_offsets end at " + std::to_string(entry.end) +
                  " but the data buffer has " + std::to_string(buffer_size) +
                  " bytes (truncated file?)");
    }
    if (elements > std::numeric_limits<uint64_t>::max() / element_size ||
        elements * element_size != entry.end - entry.begin) {
      throw Error(where + ": " + entry.dtype + " " + json_text(value["shape"]) + " needs " +
                  std::to_string(elements * element_size) + " bytes, data_offsets give " +
                  std::to_string(entry.end - entry.begin));
    }
    result.entries.push_back(std::move(entry));
  }

  std::sort(result.entries.begin(), result.entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  uint64_t covered = 0;
  for (size_t i = 0; i < result.entries.size(); ++i) {
    const SafetensorsEntry& e = result.entries[i];
    if (i > 0 && e.begin < covered) {
      throw Error(source + ": tensor \"" + e.name + "\" overlaps tensor \"" +
                  result.entries[i - 1].name + "\" (bytes " + std::to_string(e.begin) + " to " +
                  std::to_string(covered) + ")");
    }
    if (e.begin > covered) {
      throw Error(source + ": bytes " + std::to_string(covered) + " to " + std::to_string(e.begin) +
                  " of the data buffer belong to no tensor (before \"" + e.name + "\")");
    }
    covered = e.end;
  }
  if (covered != buffer_size) {
    throw Error(source + ": the data buffer has " + std::to_string(buffer_size) +
                " bytes but the tensors cover " + std::to_string(covered));
  }
  return result;
}

}  // namespace adaptertune
