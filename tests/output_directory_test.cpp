#include "adaptertune/io/output_directory.h"

#include <unistd.h>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "test_util.h"

namespace adaptertune {
namespace {

std::string fresh_dir(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "adaptertune_outdir_" + name + "_" + std::to_string(::getpid());
  remove_tree(dir);
  return dir;
}

TEST(OutputDirectory, MissingOrEmptyIsFineAndAnythingElseNeedsAMode) {
  const std::string dir = fresh_dir("modes");
  const OutputDirectory run{dir, "run directory", {"run.json", "best"}};
  EXPECT_NO_THROW(check_output_directory(run, ExistingOutput::kRefuse, {}));
  make_directories(dir);
  EXPECT_NO_THROW(check_output_directory(run, ExistingOutput::kRefuse, {}));
  write_file_atomic(dir + "/run.json", "{}");
  make_directories(dir + "/best");
  write_file_atomic(dir + "/best/x", "1");
  EXPECT_ERROR_CONTAINS(check_output_directory(run, ExistingOutput::kRefuse, {}),
                        dir + ": the run directory exists (best, run.json)");
  EXPECT_NO_THROW(check_output_directory(run, ExistingOutput::kResume, {}));
  EXPECT_NO_THROW(check_output_directory(run, ExistingOutput::kOverwrite, {}));
  // The leftovers of an interrupted atomic write are the run's own.
  write_file_atomic(dir + "/run.json.tmp.123.456", "{");
  EXPECT_NO_THROW(check_output_directory(run, ExistingOutput::kOverwrite, {}));
  clear_output_directory(run);
  EXPECT_FALSE(file_exists(dir + "/run.json"));
  EXPECT_FALSE(file_exists(dir + "/best/x"));
  EXPECT_FALSE(file_exists(dir + "/run.json.tmp.123.456"));
  remove_tree(dir);
}

TEST(OutputDirectory, ForeignFilesAndInputsAreNeverTouched) {
  const std::string dir = fresh_dir("foreign");
  make_directories(dir + "/data");
  write_file_atomic(dir + "/data/train.tsv", "x");
  const OutputDirectory run{dir, "run directory", {"run.json"}};
  for (auto mode : {ExistingOutput::kRefuse, ExistingOutput::kResume, ExistingOutput::kOverwrite}) {
    EXPECT_ERROR_CONTAINS(check_output_directory(run, mode, {}),
                          "holds \"data\", which is not part of a run directory");
    // An input inside the output is named first, however it is spelled.
    EXPECT_ERROR_CONTAINS(check_output_directory(run, mode, {dir + "/./data/../data/train.tsv"}),
                          "the output run directory holds an input");
  }
  EXPECT_ERROR_CONTAINS(check_output_directory(run, ExistingOutput::kRefuse, {dir}),
                        "holds an input");
  EXPECT_TRUE(file_exists(dir + "/data/train.tsv"));
  EXPECT_ERROR_CONTAINS(check_output_directory({dir + "/data/train.tsv", "run directory", {}},
                                               ExistingOutput::kOverwrite, {}),
                        "exists and is not a directory");
  remove_tree(dir);
}

// A pretraining run's --checkpoint-dir is written at its first checkpoint, minutes or hours in:
// a file in the way is found before the first step instead.
TEST(OutputDirectory, DirectoryThatCannotBeMadeIsFoundBeforeAnythingIsWritten) {
  const std::string dir = fresh_dir("can_be_made");
  make_directories(dir);
  write_file_atomic(dir + "/file", "x");
  EXPECT_NO_THROW(check_directory_can_be_made(dir, "checkpoint directory"));
  EXPECT_NO_THROW(check_directory_can_be_made(dir + "/", "checkpoint directory"));
  EXPECT_NO_THROW(check_directory_can_be_made(dir + "/new/deeper", "checkpoint directory"));
  EXPECT_NO_THROW(check_directory_can_be_made("relative-and-new", "checkpoint directory"));
  EXPECT_ERROR_CONTAINS(check_directory_can_be_made(dir + "/file", "checkpoint directory"),
                        dir + "/file: exists and is not a directory (the checkpoint directory)");
  EXPECT_ERROR_CONTAINS(
      check_directory_can_be_made(dir + "/file/below/deeper", "checkpoint directory"),
      dir + "/file/below/deeper: cannot be made: " + dir +
          "/file is not a directory (the checkpoint directory)");
  EXPECT_FALSE(directory_exists(dir + "/new"));
  EXPECT_FALSE(directory_exists("relative-and-new"));
  // An output directory is checked so too (a run used to fail only when it wrote there).
  EXPECT_ERROR_CONTAINS(
      check_output_directory({dir + "/file/run", "run directory", {"run.json"}},
                             ExistingOutput::kRefuse, {}),
      dir + "/file/run: cannot be made: " + dir + "/file is not a directory (the run directory)");
  remove_tree(dir);
}

// predict writes --out once every prediction is made: a path it cannot write is found first.
TEST(OutputDirectory, FileThatCannotBeWrittenIsFoundBeforeAnythingIsWritten) {
  const std::string dir = fresh_dir("can_be_written");
  make_directories(dir + "/sub");
  write_file_atomic(dir + "/file", "x");
  EXPECT_NO_THROW(check_file_can_be_written(dir + "/new.txt", "--out"));
  EXPECT_NO_THROW(check_file_can_be_written(dir + "/file", "--out"));  // replaced atomically
  EXPECT_NO_THROW(check_file_can_be_written("relative-new.txt", "--out"));
  EXPECT_ERROR_CONTAINS(check_file_can_be_written(dir + "/sub", "--out"),
                        "--out " + dir + "/sub: a directory, where a file was expected");
  EXPECT_ERROR_CONTAINS(
      check_file_can_be_written(dir + "/missing/p.txt", "--out"),
      "--out " + dir + "/missing/p.txt: no directory " + dir + "/missing to write it in");
  EXPECT_ERROR_CONTAINS(check_file_can_be_written(dir + "/file/p.txt", "--out"),
                        "no directory " + dir + "/file to write it in");
  EXPECT_EQ(read_file(dir + "/file"), "x");
  remove_tree(dir);
}

TEST(OutputDirectory, KeptFilesStayAndDoNotMakeTheDirectoryForeign) {
  const std::string dir = fresh_dir("kept");
  make_directories(dir);
  write_file_atomic(dir + "/LICENSE.md", "licence");
  write_file_atomic(dir + "/README.md", "readme");
  const OutputDirectory model{dir, "model directory", {"config.json"}, {"LICENSE", "README"}};
  // Kept files alone are no model: the directory counts as empty.
  EXPECT_NO_THROW(check_output_directory(model, ExistingOutput::kRefuse, {}));
  write_file_atomic(dir + "/config.json", "{}");
  EXPECT_ERROR_CONTAINS(check_output_directory(model, ExistingOutput::kRefuse, {}),
                        dir + ": the model directory exists (config.json)");
  EXPECT_NO_THROW(check_output_directory(model, ExistingOutput::kOverwrite, {}));
  clear_output_directory(model);
  EXPECT_FALSE(file_exists(dir + "/config.json"));
  EXPECT_TRUE(file_exists(dir + "/LICENSE.md"));
  EXPECT_TRUE(file_exists(dir + "/README.md"));
  // Without the prefixes the same files are someone else's.
  const OutputDirectory strict{dir, "model directory", {"config.json"}};
  EXPECT_ERROR_CONTAINS(check_output_directory(strict, ExistingOutput::kOverwrite, {}),
                        "holds \"LICENSE.md\", which is not part of a model directory");
  remove_tree(dir);
}

TEST(OutputDirectory, AnOutputFileNeverReplacesAnInput) {
  const std::string dir = fresh_dir("files");
  make_directories(dir + "/model");
  write_file_atomic(dir + "/in.tsv", "x");
  ASSERT_EQ(::link((dir + "/in.tsv").c_str(), (dir + "/hard.tsv").c_str()), 0);
  ASSERT_EQ(::symlink("in.tsv", (dir + "/soft.tsv").c_str()), 0);
  const std::vector<std::string> inputs{dir + "/in.tsv", dir + "/model"};
  for (const std::string& out : std::vector<std::string>{
           dir + "/in.tsv", dir + "/../" + dir.substr(dir.rfind('/') + 1) + "/in.tsv",
           dir + "/hard.tsv", dir + "/soft.tsv", dir + "/model/preds.txt"}) {
    EXPECT_ERROR_CONTAINS(check_not_an_input(out, inputs, "--out"), "would write over an input");
  }
  EXPECT_NO_THROW(check_not_an_input(dir + "/preds.txt", inputs, "--out"));
  EXPECT_NO_THROW(check_not_an_input(dir + "/preds.txt", {""}, "--out"));
  remove_tree(dir);
}

}  // namespace
}  // namespace adaptertune
