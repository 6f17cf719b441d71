#include "adaptertune/io/directory_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"

namespace adaptertune {

DirectoryLock::DirectoryLock(const std::string& path, const std::string& what) : path_(path) {
  struct stat info {};
  created_ = ::stat(path.c_str(), &info) != 0 && errno == ENOENT;
  make_directories(path);
  // The lock is on the directory itself, not on a file in it: nothing is added to the directory,
  // and nothing is left there when the process dies.
  fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  const int error = errno;  // of open() or of flock()
  const bool held_elsewhere = fd_ >= 0 && error == EWOULDBLOCK;
  const std::string failed = fd_ >= 0 ? "lock " : "open ";
  if (fd_ >= 0) ::close(fd_);
  if (created_) ::rmdir(path.c_str());  // the destructor does not run for a constructor that throws
  if (held_elsewhere) {
    throw Error(what + " " + path +
                " is being written by another run (it holds the directory's lock); wait for it "
                "to end, or write elsewhere");
  }
  throw Error("cannot " + failed + what + " " + path + ": " + std::strerror(error));
}

DirectoryLock::~DirectoryLock() {
  ::close(fd_);  // closing the last descriptor of the open file releases the lock
  // rmdir removes only an empty directory: one the run wrote into stays.
  if (created_) ::rmdir(path_.c_str());
}

}  // namespace adaptertune
