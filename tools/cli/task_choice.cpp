#include "task_choice.h"

#include "adaptertune/error.h"
#include "adaptertune/format.h"

namespace adaptertune::cli {

TextFileOptions TaskChoice::file_options() const {
  TextFileOptions options;
  options.format = file_format == "csv"     ? TextFileFormat::kCsv
                   : file_format == "tsv"   ? TextFileFormat::kTsv
                   : file_format == "jsonl" ? TextFileFormat::kJsonLines
                                            : TextFileFormat::kAuto;
  options.text_column = text_column;
  options.pair_column = pair_column;
  options.label_column = label_column;
  return options;
}

std::vector<std::string> TaskChoice::file_flags_given() const {
  const TaskChoice defaults;
  std::vector<std::string> given;
  if (!labels.empty()) given.push_back("--labels");
  if (regression) given.push_back("--regression");
  if (pair_column) given.push_back("--pair-column");
  if (text_column != defaults.text_column) given.push_back("--text-column");
  if (label_column != defaults.label_column) given.push_back("--label-column");
  if (file_format != defaults.file_format) given.push_back("--file-format");
  return given;
}

std::string TaskChoice::own_file_flags() const {
  std::vector<std::string> given = file_flags_given();
  if (given.empty()) return "";
  const std::string last = given.back();
  given.pop_back();
  return (given.empty() ? last + " describes" : joined(given) + " and " + last + " describe") +
         " your own files";
}

void add_task_choice_options(CLI::App* cmd, TaskChoice& choice, TaskFiles files) {
  const std::string formats = "a CSV, TSV or JSON-lines file (by its extension, or --file-format)";
  if (files == TaskFiles::kTrainDev) {
    cmd->add_option("--train-file", choice.train_file,
                    "Your own training data instead of GLUE's: " + formats +
                        " with --text-column and --label-column (labels: --labels, else those "
                        "found in this file)")
        ->check(CLI::ExistingFile);
  }
  if (files != TaskFiles::kTest) {
    cmd->add_option("--dev-file", choice.dev_file,
                    "Your own labelled dev data (" + formats + "), for evaluation" +
                        (files == TaskFiles::kTrainDev ? " and choosing the best model" : ""))
        ->check(CLI::ExistingFile);
  } else {
    cmd->add_option("--test-file", choice.test_file,
                    "Your own data to predict (" + formats + "; a label column is ignored)")
        ->check(CLI::ExistingFile);
  }
  cmd->add_option("--file-format", choice.file_format,
                  "auto (from the extension: .csv, .tsv, .jsonl/.json), csv, tsv or jsonl")
      ->check(CLI::IsMember({"auto", "csv", "tsv", "jsonl"}))
      ->capture_default_str();
  cmd->add_option("--text-column", choice.text_column, "Your files: the column of the text")
      ->capture_default_str();
  cmd->add_option("--pair-column", choice.pair_column,
                  "Your files: the column of the second text (a sentence-pair task; stdin lines "
                  "are then text<TAB>text_pair)");
  cmd->add_option("--labels", choice.labels,
                  "Your task's labels in class-id order, joined by ',' (default: a trained "
                  "head's labels, else the training file's, sorted)")
      ->delimiter(',');
  cmd->add_flag("--regression", choice.regression,
                "Your task predicts a number (mean squared error; pearson and spearmanr)");
  // predict reads no labels (a test file's label column is ignored, whatever its name) and scores
  // nothing.
  if (files == TaskFiles::kTest) return;
  cmd->add_option("--label-column", choice.label_column,
                  "Your files: the column of the label or regression target")
      ->capture_default_str();
  cmd->add_option("--metrics", choice.metrics,
                  "Metrics the task is scored by, joined by ',': accuracy, f1 (binary), "
                  "macro_f1, mcc, pearson, spearmanr (default: GLUE's for a GLUE task, accuracy "
                  "for classification, pearson,spearmanr for regression)")
      ->delimiter(',');
  cmd->add_option("--main-metric", choice.main_metric,
                  "The metric the best model is chosen by: one of --metrics, accuracy, or "
                  "combined (the mean of --metrics; the default)");
}

void throw_unknown_task(const std::string& name, const std::string& hint) {
  try {
    glue_task(name);  // throws, listing GLUE's tasks, unless `name` is one
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; " + hint);
  }
  throw Error("--task " + name + ": " + hint);
}

CliTask resolve_task(const std::string& name, const TaskChoice& choice,
                     const std::optional<HeadConfig>& head) {
  CliTask task;
  const GlueTaskInfo* glue = find_glue_task(name);
  if (glue && !choice.has_files()) {
    const std::string own = choice.own_file_flags();
    if (!own.empty()) {
      throw Error("--task " + name + " is GLUE's task, with its own labels and columns: " + own +
                  " (give --train-file, --dev-file or --test-file)");
    }
    task.glue = glue;
    task.info = *glue;
  } else {
    task.info.name = name;
    task.info.sentence_pair = choice.pair_column.has_value();
    if (choice.regression && !choice.labels.empty()) {
      throw Error(
          "--regression and --labels exclude each other: a task predicts a number or a "
          "label");
    }
    if (!choice.labels.empty()) {
      task.info.labels = choice.labels;
    } else if (choice.regression) {
      task.info.labels.clear();
    } else if (head) {
      if (head->problem_type != ProblemType::kRegression) {
        for (int64_t i = 0; i < head->num_labels; ++i)
          task.info.labels.push_back(head->label_name(i));
      }
    } else if (choice.train_file) {
      task.info.labels = read_text_dataset_labels(*choice.train_file, choice.file_options());
    } else {
      const std::string hint =
          "for your own task give --labels a,b,... or --regression, or an adapter pack (or "
          "model) whose head names its labels";
      if (glue || choice.has_files()) throw Error("--task " + name + ": " + hint);
      throw_unknown_task(name, hint);
    }
  }
  if (!choice.metrics.empty()) task.info.metrics = choice.metrics;
  if (choice.main_metric) task.info.main_metric = *choice.main_metric;
  task.info.validate();
  return task;
}

TextDataset read_task_split(const CliTask& task, const TaskChoice& choice,
                            const std::string& data_dir, const std::string& split,
                            const std::optional<std::string>& file) {
  if (task.glue) return read_glue(*task.glue, data_dir, split);
  if (!file) throw Error("task " + task.info.name + ": no " + split + " file given");
  return read_text_dataset(task.info, *file, choice.file_options());
}

}  // namespace adaptertune::cli
