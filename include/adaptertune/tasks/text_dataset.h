#pragma once
/// @file text_dataset.h
/// Examples of a text-classification or regression task, and a reader for a user's own data set
/// in CSV, TSV or JSON lines.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adaptertune/tasks/task_description.h"

namespace adaptertune {

/// One example. Text B is empty for single-sentence tasks.
struct TextExample {
  /// The row's id where the file has one (GLUE's `index`/`id` column), else the row number
  /// (0-based).
  int64_t index = 0;
  std::string text_a;
  std::optional<std::string> text_b;
  /// Class id (classification), when the split is labelled.
  std::optional<int64_t> label;
  /// Target value (regression), when the split is labelled.
  std::optional<double> score;
  /// 1-based line in the file where the example starts, for error messages.
  int64_t line = 0;
};

/// The examples of one file of a task.
struct TextDataset {
  /// The task the labels belong to (not owned: it must outlive the dataset).
  const TaskDescription* task = nullptr;
  std::string path;
  bool labelled = false;
  std::vector<TextExample> examples;
  /// Malformed rows skipped (only with skip_malformed), with their errors.
  std::vector<std::string> skipped;
};

/// The layouts read_text_dataset() reads.
enum class TextFileFormat {
  /// From the file name: `.csv`, `.tsv`, `.jsonl` / `.json` (JSON lines).
  kAuto,
  /// RFC 4180: comma-separated, fields in double quotes may hold commas, quotes ("") and line
  /// breaks; the first record names the columns.
  kCsv,
  /// Tab-separated values (IANA text/tab-separated-values): no quoting, a field holds no TAB or
  /// line break; the first line names the columns.
  kTsv,
  /// One JSON object per line; its keys are the columns. Labels may be strings, integers or
  /// booleans ("true"/"false"); regression targets are numbers.
  kJsonLines,
};

/// Which columns of a file hold what, and how strictly to read it.
struct TextFileOptions {
  TextFileFormat format = TextFileFormat::kAuto;
  /// The column of the text (the first text of a pair).
  std::string text_column = "text";
  /// The column of the second text; required when the task reads pairs, refused otherwise.
  std::optional<std::string> pair_column;
  /// The column of the label (or regression target). A file without it is unlabelled (a test
  /// split); a file with it must have a label in every row. Empty: labels are not read.
  std::string label_column = "label";
  /// Skip malformed rows instead of throwing (counted in TextDataset::skipped).
  bool skip_malformed = false;
};

/// The format `path` is read in: options.format, or from the file's extension (Error naming the
/// file when the extension says nothing).
TextFileFormat text_file_format(const std::string& path, TextFileFormat format);

/// Reads a data set of `task` from a CSV, TSV or JSON-lines file. A UTF-8 byte-order mark is
/// ignored, CR LF ends lines like LF. A malformed row (a missing column, an empty text, a label
/// not among the task's labels, a regression target that is not a finite number) is an Error
/// naming the file, line and column, unless options.skip_malformed. A missing text or pair
/// column is always an Error, naming the columns the file has.
TextDataset read_text_dataset(const TaskDescription& task, const std::string& path,
                              const TextFileOptions& options = {});
/// read_text_dataset() on contents already in memory; `path` names it in errors and, with
/// TextFileFormat::kAuto, gives the format.
TextDataset parse_text_dataset(const TaskDescription& task, std::string_view contents,
                               const std::string& path, const TextFileOptions& options = {});

/// The distinct labels of the label column of `path`, for a task whose labels come from its
/// training data: sorted numerically when every label is an integer ("2" before "10"), else by
/// bytes. Error when the file has no label column or no rows.
std::vector<std::string> read_text_dataset_labels(const std::string& path,
                                                  const TextFileOptions& options = {});

/// Unlabelled examples of `task` from plain lines: a text per line, or text<TAB>text_pair for
/// sentence-pair tasks (what `predict` reads on stdin). As strict as the file readers: an empty
/// line, an empty text or another number of fields is an Error naming `source` and the line.
TextDataset parse_text_lines(const TaskDescription& task, std::string_view contents,
                             const std::string& source);

}  // namespace adaptertune
