#include "adaptertune/io/directory_lock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "test_util.h"

namespace adaptertune {
namespace {

// An empty directory of its own for each test.
std::string locked_dir(const std::string& name) {
  const std::string dir = testing::fresh_dir("lock_" + name);
  make_directories(dir);
  return dir;
}

TEST(DirectoryLock, OneHolderAtATimeAndFreedWhenReleased) {
  const std::string dir = locked_dir("one");
  std::optional<DirectoryLock> first;
  first.emplace(dir, "run directory");
  EXPECT_ERROR_CONTAINS(DirectoryLock(dir, "run directory"),
                        "run directory " + dir + " is being written by another run");
  first.reset();
  EXPECT_NO_THROW(DirectoryLock(dir, "run directory"));
  remove_tree(dir);
}

TEST(DirectoryLock, HeldAgainstOtherProcessesAndFreedWhenTheHolderDies) {
  const std::string dir = locked_dir("process");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child takes the lock, says so, and is killed holding it: no destructor runs.
    ::close(ready[0]);
    try {
      DirectoryLock lock(dir, "run directory");
      const char byte = 1;
      if (::write(ready[1], &byte, 1) != 1) ::_exit(2);
      ::pause();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  EXPECT_ERROR_CONTAINS(DirectoryLock(dir, "model directory"),
                        "model directory " + dir + " is being written by another run");
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_NO_THROW(DirectoryLock(dir, "model directory"));
  remove_tree(dir);
}

TEST(DirectoryLock, MakesAMissingDirectoryAndRemovesItIfLeftEmpty) {
  const std::string dir = locked_dir("missing") + "/run/a";
  {
    const DirectoryLock lock(dir, "run directory");
    EXPECT_TRUE(::access(dir.c_str(), F_OK) == 0) << "not made";
  }
  EXPECT_FALSE(::access(dir.c_str(), F_OK) == 0) << "an empty directory it made was left behind";
  {
    const DirectoryLock lock(dir, "run directory");
    write_file_atomic(dir + "/run.json", "{}\n");
  }
  EXPECT_TRUE(file_exists(dir + "/run.json")) << "a directory written into was removed";
  {
    // One that was there before stays, empty or not.
    const std::string empty = locked_dir("existing");
    { const DirectoryLock lock(empty, "run directory"); }
    EXPECT_TRUE(::access(empty.c_str(), F_OK) == 0);
  }
  // A file where the directory should be.
  const std::string file = locked_dir("file") + "/x";
  write_file_atomic(file, "");
  EXPECT_ERROR_CONTAINS(DirectoryLock(file, "run directory"), file);
}

}  // namespace
}  // namespace adaptertune
