#include "sentencepiece_shim.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>

struct adaptertune_spm {
  sentencepiece::SentencePieceProcessor processor;
};

extern "C" {

// No C++ exception crosses this C interface (the caller is another library, loaded apart): one
// thrown inside libsentencepiece (out of memory; a protobuf version check) becomes an error here.
adaptertune_spm* adaptertune_spm_load(const char* path, char* error, size_t error_size) {
  try {
    auto spm = std::make_unique<adaptertune_spm>();
    const auto status = spm->processor.Load(path);
    if (!status.ok()) {
      std::snprintf(error, error_size, "%s", status.ToString().c_str());
      return nullptr;
    }
    return spm.release();
  } catch (const std::exception& e) {
    std::snprintf(error, error_size, "%s", e.what());
    return nullptr;
  }
}

void adaptertune_spm_free(adaptertune_spm* spm) {
  delete spm;
}

int adaptertune_spm_size(const adaptertune_spm* spm) {
  return spm->processor.GetPieceSize();
}

// A view, not a std::string: nothing here allocates, so nothing can throw bad_alloc across the C
// interface (PieceToId looks the view up as it is).
int adaptertune_spm_piece_to_id(const adaptertune_spm* spm, const char* piece, size_t length) {
  return spm->processor.PieceToId({piece, length});
}

const char* adaptertune_spm_id_to_piece(const adaptertune_spm* spm, int id, size_t* length) {
  if (id < 0 || id >= spm->processor.GetPieceSize()) return nullptr;
  const std::string& piece = spm->processor.IdToPiece(id);
  *length = piece.size();
  return piece.c_str();
}

long adaptertune_spm_encode(const adaptertune_spm* spm, const char* text, size_t length, char* out,
                            size_t capacity) {
  std::vector<std::string> pieces;
  try {
    if (!spm->processor.Encode(std::string(text, length), &pieces).ok()) return -1;
  } catch (const std::exception&) {
    return -1;
  }
  size_t needed = 0;
  for (const auto& p : pieces) needed += p.size() + 1;
  if (needed <= capacity) {
    for (const auto& p : pieces) {
      std::memcpy(out, p.c_str(), p.size() + 1);
      out += p.size() + 1;
    }
  }
  return static_cast<long>(needed);
}
}
