#pragma once
// The task of `train`, `eval` and `predict`: a GLUE task by name, or a task of the user's own
// files (CSV, TSV, JSON lines) described by flags. One home for those flags and for how a task's
// labels are found (--labels, a trained head, or the training file).

#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "adaptertune/head_config.h"
#include "adaptertune/tasks/glue.h"
#include "adaptertune/tasks/text_dataset.h"

namespace adaptertune::cli {

/// The flags that describe a task of one's own files.
struct TaskChoice {
  std::optional<std::string> train_file, dev_file, test_file;
  std::string file_format = "auto";
  std::string text_column = "text";
  std::optional<std::string> pair_column;
  std::string label_column = "label";
  std::vector<std::string> labels;
  bool regression = false;
  std::vector<std::string> metrics;
  std::optional<std::string> main_metric;

  /// Whether a data file is given: the task is then the user's own, whatever its name.
  bool has_files() const { return train_file || dev_file || test_file; }
  /// The flags given that describe your own files (--labels, --regression, --pair-column,
  /// --text-column, --label-column, --file-format away from their defaults): what a GLUE task,
  /// SQuAD and JSON lines of requests cannot use.
  std::vector<std::string> file_flags_given() const;
  /// "--labels and --text-column describe your own files" for file_flags_given(); empty when
  /// none is given.
  std::string own_file_flags() const;
  TextFileOptions file_options() const;
};

/// Which of the file flags a command takes.
enum class TaskFiles { kTrainDev, kDev, kTest };

/// Adds --train-file/--dev-file (kTrainDev), --dev-file (kDev) or --test-file (kTest), and the
/// column and label flags, and --label-column and the metric flags but for kTest (predict reads
/// no labels and scores nothing).
void add_task_choice_options(CLI::App* cmd, TaskChoice& choice, TaskFiles files);

/// A task as the CLI runs it: its description, and GLUE's where it is a GLUE task.
struct CliTask {
  TaskDescription info;
  /// The GLUE task (its files' layout, its submission files); nullptr for one's own data.
  const GlueTaskInfo* glue = nullptr;
};

/// Throws Error for a --task that is no GLUE task: GLUE's message (which lists the tasks), then
/// `hint` on how to give one's own task.
[[noreturn]] void throw_unknown_task(const std::string& name, const std::string& hint);

/// The task `name` with `choice`. A GLUE name without data files is that GLUE task; any other
/// name, or any name with data files, is the user's own task, reading text pairs when
/// --pair-column is given. Its labels: --labels, else --regression, else those of `head` (a
/// trained pack's or model's head), else those found in --train-file; Error when none of these
/// says. --metrics and --main-metric apply to either kind.
CliTask resolve_task(const std::string& name, const TaskChoice& choice,
                     const std::optional<HeadConfig>& head = std::nullopt);

/// The examples of `task` in `file` (one's own task) or in `split` of GLUE's `data_dir`.
TextDataset read_task_split(const CliTask& task, const TaskChoice& choice,
                            const std::string& data_dir, const std::string& split,
                            const std::optional<std::string>& file);

}  // namespace adaptertune::cli
