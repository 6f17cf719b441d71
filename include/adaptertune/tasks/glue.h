#pragma once
/// @file glue.h
/// The GLUE benchmark's tasks in their original TSV layout, and leaderboard submission files.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adaptertune/tasks/text_dataset.h"

namespace adaptertune {

/// The nine GLUE tasks and the diagnostic set.
enum class GlueTask { kCoLA, kSST2, kMRPC, kSTSB, kQQP, kMNLI, kQNLI, kRTE, kWNLI, kAX };

/// A GLUE task: its description, and which of the nine (for the files' layouts).
struct GlueTaskInfo : TaskDescription {
  GlueTask task = GlueTask::kSST2;
};

/// The task called `name` (case-insensitive; "sst2", "sts-b", "mnli" …); Error listing the names
/// otherwise.
const GlueTaskInfo& glue_task(const std::string& name);
const GlueTaskInfo& glue_task(GlueTask task);
/// The task called `name` as glue_task() matches it, or nullptr when no GLUE task is.
const GlueTaskInfo* find_glue_task(const std::string& name);
/// All ten, in the order of the enum.
const std::vector<GlueTaskInfo>& glue_tasks();

/// How read_glue_file() treats malformed rows.
struct GlueReadOptions {
  /// Skip malformed rows instead of throwing (the count is reported in TextDataset::skipped).
  bool skip_malformed = false;
};

/// Reads one GLUE TSV file of `task`. Fields are split on TAB only (quotes are literal), a UTF-8
/// byte-order mark is ignored, CR before LF is dropped; labelled and unlabelled (test) layouts are
/// told apart by the header. A malformed row (wrong column count, unknown label, empty text where
/// text is required, a score that is not a number in [0, 5]) is an Error naming the file and
/// line, unless options.skip_malformed.
TextDataset read_glue_file(const GlueTaskInfo& task, const std::string& path,
                           const GlueReadOptions& options = {});

/// read_glue_file() on text already in memory; `path` names it in errors.
TextDataset parse_glue_tsv(const GlueTaskInfo& task, std::string_view contents,
                           const std::string& path, const GlueReadOptions& options = {});

/// Reads split `split` of `task` from `data_dir/<task name>/`: "train", "dev", "test" (MNLI:
/// "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"; "dev"/"test" mean matched;
/// AX: "test" reads AX.tsv or diagnostic.tsv).
TextDataset read_glue(const GlueTaskInfo& task, const std::string& data_dir,
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
