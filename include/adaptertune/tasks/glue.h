#pragma once
/// @file glue.h
/// The GLUE benchmark's tasks in their original TSV layout, and leaderboard submission files.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace adaptertune {

/// The nine GLUE tasks and the diagnostic set.
enum class GlueTask { kCoLA, kSST2, kMRPC, kSTSB, kQQP, kMNLI, kQNLI, kRTE, kWNLI, kAX };

/// What a task is.
struct GlueTaskInfo {
  GlueTask task;
  /// "CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI", "AX".
  std::string name;
  /// Label strings in the order of the GLUE tooling (index = class id); empty for regression.
  std::vector<std::string> labels;
  bool sentence_pair = false;
  bool regression() const { return labels.empty(); }
  /// The glue_metrics() key a fine-tune selects checkpoints by: "mcc" (CoLA, AX), "accuracy"
  /// (SST-2, MNLI, QNLI, RTE, WNLI) or "combined" (MRPC, QQP, STS-B).
  std::string main_metric;
};

/// The task called `name` (case-insensitive; "sst2", "sts-b", "mnli" …); Error listing the names
/// otherwise.
const GlueTaskInfo& glue_task(const std::string& name);
const GlueTaskInfo& glue_task(GlueTask task);
/// All ten, in the order of the enum.
const std::vector<GlueTaskInfo>& glue_tasks();

/// One example. Text B is empty for single-sentence tasks.
struct GlueExample {
  /// The row's `index`/`id` column where the file has one (test sets), else the row number.
  int64_t index = 0;
  std::string text_a;
  std::optional<std::string> text_b;
  /// Class id (classification), when the split is labelled.
  std::optional<int64_t> label;
  /// Similarity score (STS-B), when the split is labelled.
  std::optional<double> score;
  /// 1-based line in the file, for error messages.
  int64_t line = 0;
};

/// How read_glue_file() treats malformed rows.
struct GlueReadOptions {
  /// Skip malformed rows instead of throwing (the count is reported in GlueDataset::skipped).
  bool skip_malformed = false;
};

struct GlueDataset {
  const GlueTaskInfo* task = nullptr;
  std::string path;
  bool labelled = false;
  std::vector<GlueExample> examples;
  /// Malformed rows skipped (only with GlueReadOptions::skip_malformed), with their errors.
  std::vector<std::string> skipped;
};

/// Reads one GLUE TSV file of `task`. Fields are split on TAB only (quotes are literal), a UTF-8
/// byte-order mark is ignored, CR before LF is dropped; labelled and unlabelled (test) layouts are
/// told apart by the header. A malformed row (wrong column count, unknown label, empty text where
/// text is required, a score that is not a number in [0, 5]) is an Error naming the file and
/// line, unless options.skip_malformed.
GlueDataset read_glue_file(const GlueTaskInfo& task, const std::string& path,
                           const GlueReadOptions& options = {});

/// read_glue_file() on text already in memory; `path` names it in errors.
GlueDataset parse_glue_tsv(const GlueTaskInfo& task, std::string_view contents,
                           const std::string& path, const GlueReadOptions& options = {});

/// Unlabelled examples of `task` from plain lines: a text per line, or text<TAB>text_pair for
/// sentence-pair tasks (what `predict` reads on stdin). As strict as the TSV reader: an empty
/// line, an empty text or another number of fields is an Error naming `source` and the line.
GlueDataset parse_text_lines(const GlueTaskInfo& task, std::string_view contents,
                             const std::string& source);

/// Reads split `split` of `task` from `data_dir/<task name>/`: "train", "dev", "test" (MNLI:
/// "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"; "dev"/"test" mean matched;
/// AX: "test" reads AX.tsv or diagnostic.tsv).
GlueDataset read_glue(const GlueTaskInfo& task, const std::string& data_dir,
                      const std::string& split, const GlueReadOptions& options = {});

/// The leaderboard file name for predictions on `split` of `task` ("CoLA.tsv", "MNLI-m.tsv",
/// "MNLI-mm.tsv", "AX.tsv", …).
std::string glue_submission_file_name(const GlueTaskInfo& task, const std::string& split = "test");

/// Writes `directory/<glue_submission_file_name>` atomically: a header `index\tprediction` and one
/// row per example with the label string (STS-B: the score clipped to [0, 5], 3 decimals).
/// `predictions` are class ids, or scores for STS-B. Returns the path written.
std::string write_glue_submission(const GlueTaskInfo& task, const std::string& split,
                                  const std::string& directory, const std::vector<int64_t>& indices,
                                  const std::vector<double>& predictions);

}  // namespace adaptertune
