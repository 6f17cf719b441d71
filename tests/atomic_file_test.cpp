#include "adaptertune/io/atomic_file.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

std::string fresh_dir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "adaptertune_" + name + "_" + std::to_string(::getpid());
  std::string command = "rm -rf '" + dir + "' && mkdir -p '" + dir + "'";
  EXPECT_EQ(std::system(command.c_str()), 0);
  return dir;
}

int files_in(const std::string& dir) {
  int n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* entry = ::readdir(d)) {
      if (std::string(entry->d_name) != "." && std::string(entry->d_name) != "..") ++n;
    }
    ::closedir(d);
  }
  return n;
}

TEST(AtomicFile, WritesAndReplaces) {
  std::string dir = fresh_dir("writes");
  std::string path = dir + "/file.json";
  write_file_atomic(path, "first");
  EXPECT_EQ(read_file(path), "first");
  write_file_atomic(path, std::string("second\0binary", 13));
  EXPECT_EQ(read_file(path), std::string("second\0binary", 13));
  EXPECT_EQ(files_in(dir), 1) << "no temporary file may be left behind";
}

TEST(AtomicFile, FailureNamesThePathAndLeavesNoTemporary) {
  EXPECT_ERROR_CONTAINS(write_file_atomic("/nonexistent_dir_adaptertune/x.json", "data"),
                        "/nonexistent_dir_adaptertune/x.json: cannot create temporary file");
  // A target that is a directory: the rename fails after the data was written.
  std::string dir = fresh_dir("rename");
  std::string target = dir + "/sub";
  ASSERT_EQ(std::system(("mkdir '" + target + "' && touch '" + target + "/keep'").c_str()), 0);
  EXPECT_ERROR_CONTAINS(write_file_atomic(target, "data"), "rename of");
  EXPECT_EQ(files_in(dir), 1);
  EXPECT_ERROR_CONTAINS(read_file(dir + "/missing"), "missing: cannot open for reading");
}

// A directory where a file is expected is said to be one: it used to pass for an absent file
// ("no vocab.txt or spiece.model") or, read, for an empty one ("invalid JSON at byte 1").
TEST(AtomicFile, DirectoryWhereAFileIsExpectedIsAnError) {
  const std::string dir = fresh_dir("not_a_file");
  ASSERT_EQ(std::system(("mkdir '" + dir + "/config.json'").c_str()), 0);
  write_file_atomic(dir + "/vocab.txt", "[PAD]\n");
  EXPECT_TRUE(optional_file_exists(dir + "/vocab.txt"));
  EXPECT_FALSE(optional_file_exists(dir + "/missing.json"));
  EXPECT_FALSE(optional_file_exists(dir + "/vocab.txt/below"));  // a file is no directory
  EXPECT_ERROR_CONTAINS(optional_file_exists(dir + "/config.json"),
                        dir + "/config.json: a directory, where a file was expected");
  EXPECT_ERROR_CONTAINS(read_file(dir + "/config.json"),
                        dir + "/config.json: a directory, where a file was expected");
  EXPECT_FALSE(file_exists(dir + "/config.json"));  // the plain question keeps its answer
}

TEST(AtomicFile, KilledWriterLeavesOldOrNewFileNeverAPartialOne) {
  std::string dir = fresh_dir("killed");
  std::string path = dir + "/checkpoint.bin";
  const std::string old_contents = "old complete checkpoint";
  write_file_atomic(path, old_contents);
  const std::string new_contents(64 << 20, 'n');  // 64 MiB: long enough to kill mid-way
  int killed_mid_write = 0;
  for (int round = 0; round < 4; ++round) {
    // Killed once its temporary file exists, so the kill lands inside write_file_atomic.
    const std::string temp = testing::kill_writer_mid_write(
        [&] { write_file_atomic(path, new_contents); }, dir, "checkpoint.bin.tmp.");
    if (!temp.empty()) {
      ++killed_mid_write;
      EXPECT_EQ(read_file(path), old_contents) << "killed while writing " << temp;
      ::unlink((dir + "/" + temp).c_str());
    } else {
      const std::string now = read_file(path);
      EXPECT_TRUE(now == old_contents || now == new_contents)
          << "the file holds " << now.size() << " bytes";
    }
    write_file_atomic(path, old_contents);
  }
  // Without a kill in the middle of a write this test would prove nothing.
  EXPECT_GE(killed_mid_write, 1);
}

}  // namespace
}  // namespace adaptertune
