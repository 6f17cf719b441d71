#pragma once
/// @file directory_lock.h
/// One writer per output directory: two runs writing the same run directory would interleave
/// their checkpoints and logs, and a resume would then continue a mixture of both.

#include <string>

namespace adaptertune {

/// An exclusive advisory lock (flock) on a directory, held for the object's lifetime. The kernel
/// drops it when the process ends, however it ends, so a killed run leaves no stale lock behind.
/// It excludes other DirectoryLocks (of this or any process) on the same directory, not writers
/// that do not take one.
class DirectoryLock {
 public:
  /// Locks directory `path` without waiting, creating it (and its parents) when it is missing.
  /// Throws Error naming `path` and `what` ("run directory") when another lock holds it, or when
  /// it cannot be made or opened.
  DirectoryLock(const std::string& path, const std::string& what);
  /// Releases the lock. The directory is removed again if the lock created it and it is still
  /// empty, so that a run refused before it wrote anything leaves nothing behind (parents the
  /// lock made for it stay).
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  std::string path_;
  bool created_ = false;
  int fd_ = -1;
};

}  // namespace adaptertune
