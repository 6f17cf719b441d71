#pragma once
// A C interface to libsentencepiece, compiled into its own small shared library
// (libadaptertune_sentencepiece.so) that the main library loads with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND).
//
// Why: Debian's libsentencepiece carries its own copy of protobuf-lite and exports those symbols;
// LibTorch uses the system libprotobuf. Linked into one process, libprotobuf's template calls bind
// to sentencepiece's copies and the process crashes before main(). Loaded privately and
// deep-bound, each library keeps its own protobuf.

#include <cstddef>

extern "C" {

/// Opaque processor handle.
struct adaptertune_spm;

/// Loads a model; returns null and writes a message into `error` (size `error_size`) on failure.
adaptertune_spm* adaptertune_spm_load(const char* path, char* error, size_t error_size);
void adaptertune_spm_free(adaptertune_spm* spm);
int adaptertune_spm_size(const adaptertune_spm* spm);
int adaptertune_spm_piece_to_id(const adaptertune_spm* spm, const char* piece, size_t length);
/// The piece of `id` (valid until the processor is freed); null for an id out of range.
const char* adaptertune_spm_id_to_piece(const adaptertune_spm* spm, int id, size_t* length);
/// Encodes `text` into pieces written as consecutive NUL-terminated strings into `out` (capacity
/// `capacity` bytes). Returns the bytes needed; when that exceeds `capacity`, nothing is written
/// and the caller retries with a larger buffer. Returns -1 on error.
long adaptertune_spm_encode(const adaptertune_spm* spm, const char* text, size_t length, char* out,
                            size_t capacity);
}
