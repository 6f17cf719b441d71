#pragma once
/// @file safetensors_format.h
/// Parsing and validating the safetensors header, without LibTorch (so that it can be fuzzed and
/// run under sanitizers on its own).
///
/// The format: an 8-byte little-endian header length N, N bytes of JSON (an object mapping each
/// tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`, plus an optional
/// `"__metadata__"` object of strings), then the data buffer; offsets are relative to the buffer.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace adaptertune {

/// One tensor's entry in a safetensors header.
struct SafetensorsEntry {
  std::string name;
  /// "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8" or "BOOL".
  std::string dtype;
  std::vector<int64_t> shape;
  /// Byte range in the data buffer, [begin, end).
  uint64_t begin = 0;
  uint64_t end = 0;
};

/// A validated safetensors header.
struct SafetensorsHeader {
  /// Entries in the order of their data (ascending offsets).
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
  /// Offset of the data buffer from the start of the file (8 + header length).
  uint64_t data_start = 0;
};

/// Size in bytes of one element of `dtype`; throws Error for a dtype this library does not read.
size_t safetensors_dtype_size(const std::string& dtype);

/// Validates the whole file image `data[0, size)`: header length within the file, JSON that
/// parses into the expected shape, known dtypes, non-negative shapes, offsets in range, byte sizes
/// matching dtype × shape, no duplicate names, no overlapping tensors and no bytes that belong to
/// no tensor. Every failure is an Error naming `source` and, where there is one, the tensor.
SafetensorsHeader parse_safetensors_header(const uint8_t* data, size_t size,
                                           const std::string& source);

}  // namespace adaptertune
