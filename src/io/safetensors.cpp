#include "adaptertune/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this build assumes a little-endian host");

namespace adaptertune {
namespace {

at::ScalarType scalar_type_of(const std::string& dtype) {
  static const std::map<std::string, at::ScalarType> types = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
      {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
      {"U8", at::kByte},    {"BOOL", at::kBool}};
  return types.at(dtype);  // the parser accepts no other dtype
}

std::string dtype_of(at::ScalarType type, const std::string& name) {
  switch (type) {
    case at::kDouble:
      return "F64";
    case at::kFloat:
      return "F32";
    case at::kHalf:
      return "F16";
    case at::kBFloat16:
      return "BF16";
    case at::kLong:
      return "I64";
    case at::kInt:
      return "I32";
    case at::kShort:
      return "I16";
    case at::kChar:
      return "I8";
    case at::kByte:
      return "U8";
    case at::kBool:
      return "BOOL";
    default:
      throw Error("safetensors: tensor \"" + name + "\" has dtype " + c10::toString(type) +
                  ", which safetensors cannot hold here");
  }
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(err));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);
    if (mapped == MAP_FAILED) throw Error(path + ": cannot map: " + std::strerror(err));
    data_ = static_cast<const uint8_t*>(mapped);
  } else {
    ::close(fd);
  }
  try {
    header_ = parse_safetensors_header(data_, size_, path);
  } catch (...) {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    throw;
  }
  for (size_t i = 0; i < header_.entries.size(); ++i) index_[header_.entries[i].name] = i;
}

SafetensorsFile::~SafetensorsFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& e : header_.entries) out.push_back(e.name);
  return out;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return index_.count(name) > 0;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(path_ + ": no tensor named \"" + name + "\"");
  const SafetensorsEntry& e = header_.entries[it->second];
  at::Tensor out = at::empty(e.shape, at::TensorOptions().dtype(scalar_type_of(e.dtype)));
  if (e.end > e.begin) {
    std::memcpy(out.data_ptr(), data_ + header_.data_start + e.begin, e.end - e.begin);
  }
  return out;
}

NamedTensors SafetensorsFile::tensors() const {
  NamedTensors out;
  for (const auto& e : header_.entries) out.emplace_back(e.name, tensor(e.name));
  return out;
}

NamedTensors load_safetensors(const std::string& path,
                              std::map<std::string, std::string>* metadata) {
  SafetensorsFile file(path);
  if (metadata != nullptr) *metadata = file.metadata();
  return file.tensors();
}

std::string serialize_safetensors(const NamedTensors& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw Error("safetensors: \"__metadata__\" is not a tensor name");
    if (!seen.insert(name).second) {
      throw Error("safetensors: tensor \"" + name + "\" given twice");
    }
    if (!tensor.defined()) throw Error("safetensors: tensor \"" + name + "\" is undefined");
    at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(cpu.numel()) * cpu.element_size();
    header[name] = {{"dtype", dtype_of(cpu.scalar_type(), name)},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(cpu);
  }
  std::string json = json_text(header);
  // Pad with spaces so that the data buffer starts 8-byte aligned, as the reference writer does.
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  uint64_t length = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  out += json;
  for (const auto& t : data) {
    if (t.numel() > 0) {
      out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
    }
  }
  return out;
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace adaptertune
