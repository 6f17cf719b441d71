#pragma once
/// @file atomic_file.h
/// Writing files so that a crash never leaves a half-written one behind.

#include <string>
#include <string_view>

namespace adaptertune {

/// Writes `contents` to `path` through a temporary file in the same directory that is flushed,
/// fsync'd and renamed over `path`; the directory is fsync'd too. At any moment `path` holds
/// either its old complete contents or the new ones. Throws Error naming `path` on failure, and
/// removes the temporary file.
void write_file_atomic(const std::string& path, std::string_view contents);

/// Reads the whole file at `path`; throws Error naming it when it cannot be read.
std::string read_file(const std::string& path);

/// Whether `path` names a regular file.
bool file_exists(const std::string& path);

/// For a file a reader looks for and may do without (a model directory's config.json,
/// vocab.txt, ...): whether it is there. False only when nothing is at `path`; something else
/// there, such as a directory, throws Error ("PATH: a directory, where a file was expected"), as
/// does a path that cannot be examined (permission denied), rather than passing for absent.
bool optional_file_exists(const std::string& path);

/// Whether `path` names a directory.
bool directory_exists(const std::string& path);

/// fsyncs directory `path`, so that renames and creations inside it survive a power loss
/// (best effort: a directory that cannot be opened is skipped).
void sync_directory(const std::string& path);

/// Removes `path` and everything below it, if it exists (like `rm -rf`).
void remove_tree(const std::string& path);

/// Creates directory `path` and its missing parents (like `mkdir -p`); throws Error on failure.
void make_directories(const std::string& path);

}  // namespace adaptertune
