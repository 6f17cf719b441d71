#pragma once
// SHA-256 through OpenSSL's EVP interface (private to the library).

#include <cstddef>
#include <memory>
#include <string>

namespace adaptertune::detail {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  void update(const std::string& text) { update(text.data(), text.size()); }
  /// The digest as 64 lower-case hex digits; the object cannot be updated afterwards.
  std::string hex_digest();

 private:
  struct Context;
  std::unique_ptr<Context> context_;
};

}  // namespace adaptertune::detail
