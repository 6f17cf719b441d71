#pragma once
/// @file safetensors.h
/// Reading and writing safetensors files (the format of Hugging Face `model.safetensors`).

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "adaptertune/io/safetensors_format.h"

namespace adaptertune {

/// Named tensors in file order.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

/// A safetensors file opened by memory-mapping it. The header is validated on open; tensors are
/// copied out of the mapping on request, so they outlive the file object.
class SafetensorsFile {
 public:
  /// Maps and validates `path`; throws Error naming the file (and tensor) on any problem.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  /// A CPU tensor holding a copy of `name`'s data; throws Error if there is no such tensor.
  at::Tensor tensor(const std::string& name) const;
  /// Every tensor, in file order.
  NamedTensors tensors() const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;
};

/// Reads every tensor of the file at `path` (see SafetensorsFile).
NamedTensors load_safetensors(const std::string& path,
                              std::map<std::string, std::string>* metadata = nullptr);

/// The bytes of a safetensors file holding `tensors` (any device, any layout; written as
/// contiguous little-endian CPU data) and `metadata`. Throws Error for a dtype safetensors cannot
/// hold or a duplicate name.
std::string serialize_safetensors(const NamedTensors& tensors,
                                  const std::map<std::string, std::string>& metadata = {});

/// Writes serialize_safetensors() to `path` atomically (temporary file, fsync, rename).
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace adaptertune
