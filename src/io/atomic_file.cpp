#include "adaptertune/io/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

#include "adaptertune/error.h"

namespace adaptertune {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

// The error for something other than a regular file where a file was expected.
Error not_a_file(const std::string& path, const struct stat& st) {
  return Error(path + ": " + (S_ISDIR(st.st_mode) ? "a directory" : "not a regular file") +
               ", where a file was expected");
}

std::string directory_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// A file descriptor that closes itself, so that every error path releases it.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

void write_file_atomic(const std::string& path, std::string_view contents) {
  std::random_device random;
  const std::string temp =
      path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(random() & 0xffffff);
  FileDescriptor fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    throw Error(path + ": cannot create temporary file " + temp + ": " + errno_text());
  }
  auto fail = [&](const std::string& what) {
    std::string message = path + ": " + what + ": " + errno_text();
    ::unlink(temp.c_str());
    throw Error(message);
  };
  const char* data = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    ssize_t written = ::write(fd.get(), data, left);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    data += written;
    left -= static_cast<size_t>(written);
  }
  if (::fsync(fd.get()) != 0) fail("fsync failed");
  if (::close(fd.release()) != 0) fail("close failed");
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("rename of " + temp + " failed");
  // The rename itself lives in the directory: sync it so that it survives a power loss.
  sync_directory(directory_of(path));
}

void sync_directory(const std::string& path) {
  FileDescriptor dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() >= 0) ::fsync(dir.get());
}

void remove_tree(const std::string& path) {
  struct stat self {};
  if (::lstat(path.c_str(), &self) != 0) return;
  if (!S_ISDIR(self.st_mode)) {  // a file or a link: removed itself, never what a link points to
    ::unlink(path.c_str());
    return;
  }
  if (DIR* dir = ::opendir(path.c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      const std::string child = path + "/" + name;
      struct stat st {};
      if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        remove_tree(child);
      } else {
        ::unlink(child.c_str());
      }
    }
    ::closedir(dir);
  }
  ::rmdir(path.c_str());
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool optional_file_exists(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return false;
    throw Error(path + ": cannot examine: " + errno_text());
  }
  if (!S_ISREG(st.st_mode)) throw not_a_file(path, st);
  return true;
}

bool directory_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void make_directories(const std::string& path) {
  std::string partial;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    partial = path.substr(0, slash);
    if (!partial.empty() && ::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      throw Error(path + ": cannot create directory " + partial + ": " + errno_text());
    }
    start = slash + 1;
  }
  if (!directory_exists(path)) {
    throw Error(path + ": exists and is not a directory");
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open for reading: " + errno_text());
  // A directory opens, then reads as empty: it would pass for an empty file.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw not_a_file(path, st);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed");
  return buffer.str();
}

}  // namespace adaptertune
