#include "adaptertune/io/directory_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "adaptertune/error.h"

namespace adaptertune {

DirectoryLock::DirectoryLock(const std::string& path, const std::string& what)
    : fd_(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
  if (fd_ < 0) {
    throw Error("cannot open " + what + " " + path + " to lock it: " + std::strerror(errno));
  }
  // The lock is on the directory itself, not on a file in it: nothing is added to the directory,
  // and nothing is left there when the process dies.
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd_);
    if (error == EWOULDBLOCK) {
      throw Error(what + " " + path +
                  " is being written by another run (it holds the directory's lock); wait for "
                  "it to end, or write elsewhere");
    }
    throw Error("cannot lock " + what + " " + path + ": " + std::strerror(error));
  }
}

DirectoryLock::~DirectoryLock() {
  ::close(fd_);  // closing the last descriptor of the open file releases the lock
}

}  // namespace adaptertune
