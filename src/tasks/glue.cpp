#include "adaptertune/tasks/glue.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <sstream>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "tasks/class_id.h"
#include "tasks/text_lines.h"

namespace adaptertune {
namespace {

// Where a task's fields are, by header name (CoLA's headerless train/dev files by position).
struct Layout {
  std::string text_a, text_b, label, index;
};

Layout layout_of(GlueTask task) {
  switch (task) {
    case GlueTask::kCoLA:
      return {"sentence", "", "label", "index"};
    case GlueTask::kSST2:
      return {"sentence", "", "label", "index"};
    case GlueTask::kMRPC:
      return {"#1 String", "#2 String", "Quality", "index"};
    case GlueTask::kSTSB:
      return {"sentence1", "sentence2", "score", "index"};
    case GlueTask::kQQP:
      return {"question1", "question2", "is_duplicate", "id"};
    case GlueTask::kMNLI:
      return {"sentence1", "sentence2", "gold_label", "index"};
    case GlueTask::kQNLI:
      return {"question", "sentence", "label", "index"};
    case GlueTask::kRTE:
    case GlueTask::kWNLI:
    case GlueTask::kAX:
      return {"sentence1", "sentence2", "label", "index"};
  }
  return {};
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

const std::vector<GlueTaskInfo>& glue_tasks() {
  // `metrics` are what the GLUE leaderboard scores a task by ("combined" is their mean);
  // accuracy is reported for every classification task besides.
  auto make = [](GlueTask task, std::string name, std::vector<std::string> labels, bool pair,
                 std::vector<std::string> metrics, std::string main_metric) {
    GlueTaskInfo info;
    info.task = task;
    info.name = std::move(name);
    info.labels = std::move(labels);
    info.sentence_pair = pair;
    info.metrics = std::move(metrics);
    info.main_metric = std::move(main_metric);
    return info;
  };
  static const std::vector<GlueTaskInfo> tasks = {
      make(GlueTask::kCoLA, "CoLA", {"0", "1"}, false, {"mcc"}, "mcc"),
      make(GlueTask::kSST2, "SST-2", {"0", "1"}, false, {"accuracy"}, "accuracy"),
      make(GlueTask::kMRPC, "MRPC", {"0", "1"}, true, {"f1", "accuracy"}, "combined"),
      make(GlueTask::kSTSB, "STS-B", {}, true, {"pearson", "spearmanr"}, "combined"),
      make(GlueTask::kQQP, "QQP", {"0", "1"}, true, {"f1", "accuracy"}, "combined"),
      make(GlueTask::kMNLI, "MNLI", {"contradiction", "entailment", "neutral"}, true, {"accuracy"},
           "accuracy"),
      make(GlueTask::kQNLI, "QNLI", {"entailment", "not_entailment"}, true, {"accuracy"},
           "accuracy"),
      make(GlueTask::kRTE, "RTE", {"entailment", "not_entailment"}, true, {"accuracy"}, "accuracy"),
      make(GlueTask::kWNLI, "WNLI", {"0", "1"}, true, {"accuracy"}, "accuracy"),
      make(GlueTask::kAX, "AX", {"contradiction", "entailment", "neutral"}, true, {"mcc"}, "mcc"),
  };
  return tasks;
}

const GlueTaskInfo& glue_task(GlueTask task) {
  return glue_tasks().at(static_cast<size_t>(task));
}

const GlueTaskInfo* find_glue_task(const std::string& name) {
  auto squash = [](const std::string& s) {
    std::string out;
    for (char c : lower(s)) {
      if (c != '-' && c != '_') out += c;
    }
    return out;
  };
  for (const auto& info : glue_tasks()) {
    if (squash(info.name) == squash(name)) return &info;
  }
  return nullptr;
}

const GlueTaskInfo& glue_task(const std::string& name) {
  if (const GlueTaskInfo* info = find_glue_task(name)) return *info;
  std::string names;
  for (const auto& info : glue_tasks()) names += (names.empty() ? "" : ", ") + info.name;
  throw Error("unknown GLUE task \"" + name + "\" (expected one of " + names + ")");
}

TextDataset read_glue_file(const GlueTaskInfo& task, const std::string& path,
                           const GlueReadOptions& options) {
  return parse_glue_tsv(task, read_file(path), path, options);
}

TextDataset parse_glue_tsv(const GlueTaskInfo& task, std::string_view contents,
                           const std::string& path, const GlueReadOptions& options) {
  const std::vector<std::string> lines = detail::split_lines(contents);
  TextDataset data;
  data.task = &task;
  data.path = path;
  if (lines.empty()) throw Error(path + ": file is empty");

  const Layout layout = layout_of(task.task);
  std::vector<std::string> header = detail::split_tabs(lines[0]);
  size_t first_row = 1;
  int text_a = -1, text_b = -1, label = -1, index = -1;
  size_t columns = header.size();
  auto find = [&](const std::string& name) {
    auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  if (task.task == GlueTask::kCoLA && find("sentence") < 0) {
    // CoLA train/dev: no header; source, label, original mark, sentence.
    first_row = 0;
    columns = 4;
    label = 1;
    text_a = 3;
  } else {
    text_a = find(layout.text_a);
    text_b = layout.text_b.empty() ? -1 : find(layout.text_b);
    label = find(layout.label);
    index = find(layout.index);
    if (text_a < 0 || (!layout.text_b.empty() && text_b < 0)) {
      throw Error(path + ":1: header lacks the \"" + (text_a < 0 ? layout.text_a : layout.text_b) +
                  "\" column of " + task.name + " (found: " + lines[0] + ")");
    }
  }
  data.labelled = label >= 0;

  for (size_t i = first_row; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    const int64_t line_number = static_cast<int64_t>(i) + 1;
    if (line.empty() && i + 1 == lines.size()) continue;  // a final empty line
    const std::string where = path + ":" + std::to_string(line_number);
    try {
      std::vector<std::string> fields = detail::split_tabs(line);
      if (fields.size() != columns) {
        throw Error(where + ": expected " + std::to_string(columns) +
                    " tab-separated fields, found " + std::to_string(fields.size()));
      }
      TextExample example;
      example.line = line_number;
      example.index = static_cast<int64_t>(data.examples.size());
      if (index >= 0) {
        try {
          size_t used = 0;
          example.index = std::stoll(fields[static_cast<size_t>(index)], &used);
          if (used != fields[static_cast<size_t>(index)].size()) throw std::invalid_argument("");
        } catch (const std::exception&) {
          throw Error(where + ": index \"" + fields[static_cast<size_t>(index)] +
                      "\" is not an integer");
        }
      }
      example.text_a = fields[static_cast<size_t>(text_a)];
      if (detail::is_blank(example.text_a))
        throw Error(where + ": empty text in column " + std::to_string(text_a + 1));
      if (text_b >= 0) {
        example.text_b = fields[static_cast<size_t>(text_b)];
        if (detail::is_blank(*example.text_b)) {
          throw Error(where + ": empty text in column " + std::to_string(text_b + 1));
        }
      }
      if (label >= 0) {
        const std::string& value = fields[static_cast<size_t>(label)];
        if (task.regression()) {
          char* end = nullptr;
          double score = std::strtod(value.c_str(), &end);
          if (value.empty() || *end != '\0' || !std::isfinite(score) || score < 0 || score > 5) {
            throw Error(where + ": score \"" + value + "\" is not a number in [0, 5]");
          }
          example.score = score;
        } else {
          try {
            example.label = task.label_id(value);
          } catch (const Error& e) {
            throw Error(where + ": " + e.what());
          }
        }
      }
      data.examples.push_back(std::move(example));
    } catch (const Error& e) {
      if (!options.skip_malformed) throw;
      data.skipped.push_back(e.what());
    }
  }
  return data;
}

TextDataset read_glue(const GlueTaskInfo& task, const std::string& data_dir,
                      const std::string& split, const GlueReadOptions& options) {
  const std::string dir = data_dir + "/" + task.name + "/";
  std::vector<std::string> candidates;
  if (task.task == GlueTask::kMNLI) {
    std::string s = split == "dev" ? "dev_matched" : split == "test" ? "test_matched" : split;
    candidates = {s + ".tsv"};
  } else if (task.task == GlueTask::kAX) {
    candidates = {"AX.tsv", "diagnostic.tsv", "diagnostic-full.tsv"};
    if (split != "test") throw Error("AX has only a test split, not \"" + split + "\"");
  } else {
    candidates = {split + ".tsv"};
  }
  for (const auto& name : candidates) {
    if (optional_file_exists(dir + name)) return read_glue_file(task, dir + name, options);
  }
  throw Error(dir + candidates.front() + ": no such file (GLUE split \"" + split + "\" of " +
              task.name + ")");
}

std::string glue_submission_file_name(const GlueTaskInfo& task, const std::string& split) {
  if (task.task == GlueTask::kMNLI) {
    return split.find("mismatched") != std::string::npos ? "MNLI-mm.tsv" : "MNLI-m.tsv";
  }
  return task.name + ".tsv";
}

std::string write_glue_submission(const GlueTaskInfo& task, const std::string& split,
                                  const std::string& directory, const std::vector<int64_t>& indices,
                                  const std::vector<double>& predictions) {
  if (indices.size() != predictions.size()) {
    throw Error("write_glue_submission: " + std::to_string(indices.size()) + " indices but " +
                std::to_string(predictions.size()) + " predictions");
  }
  std::ostringstream out;
  out << "index\tprediction\n";
  for (size_t i = 0; i < indices.size(); ++i) {
    out << indices[i] << '\t';
    if (task.regression()) {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.3f", std::clamp(predictions[i], 0.0, 5.0));
      out << buffer;
    } else {
      const std::optional<int64_t> id = detail::class_id(predictions[i], task.labels.size());
      if (!id) {
        throw Error("write_glue_submission: prediction " + format_number(predictions[i]) +
                    " is not a class id of " + task.name);
      }
      out << task.labels[static_cast<size_t>(*id)];
    }
    out << '\n';
  }
  make_directories(directory);
  const std::string path = directory + "/" + glue_submission_file_name(task, split);
  write_file_atomic(path, out.str());
  return path;
}

}  // namespace adaptertune
