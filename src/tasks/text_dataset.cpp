#include "adaptertune/tasks/text_dataset.h"

#include <csv.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "tasks/text_lines.h"

namespace adaptertune {
namespace {

// A file as named columns of strings, whatever its format: the readers below fill it, one place
// turns it into examples.
struct Row {
  int64_t line = 0;
  /// Index = column; std::nullopt where the row lacks the column (JSON lines).
  std::vector<std::optional<std::string>> values;
  /// Why the row could not be read (wrong field count, bad JSON …); empty when it could.
  std::string error;
};

struct Table {
  std::vector<std::string> columns;
  std::vector<Row> rows;
  /// What a missing column is looked for among, for its error: the header, or the keys of the
  /// first JSON object.
  std::string available;

  int column(const std::string& name) const {
    auto it = std::find(columns.begin(), columns.end(), name);
    return it == columns.end() ? -1 : static_cast<int>(it - columns.begin());
  }
  std::string column_list() const { return columns.empty() ? "none" : joined(columns); }
};

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Rows as columns of strings, checked against the header's width.
void add_fields(Table& table, std::vector<std::string> fields, int64_t line) {
  Row row;
  row.line = line;
  if (fields.size() != table.columns.size()) {
    row.error = "expected " + std::to_string(table.columns.size()) + " fields (" +
                table.column_list() + "), found " + std::to_string(fields.size());
  } else {
    for (auto& field : fields) row.values.emplace_back(std::move(field));
  }
  table.rows.push_back(std::move(row));
}

// libcsv's callbacks collect the fields of a record and the line it starts on.
struct CsvState {
  Table table;
  std::vector<std::string> fields;
  int64_t current_line = 1;
  int64_t record_line = 0;
  bool header_done = false;
};

void on_csv_field(void* data, size_t size, void* state_ptr) {
  auto& state = *static_cast<CsvState*>(state_ptr);
  std::string field = data ? std::string(static_cast<const char*>(data), size) : std::string();
  if (state.fields.empty()) {
    // A field ends on the current line; a quoted one may have started lines before.
    state.record_line = state.current_line - std::count(field.begin(), field.end(), '\n');
  }
  state.fields.push_back(std::move(field));
}

void on_csv_record(int, void* state_ptr) {
  auto& state = *static_cast<CsvState*>(state_ptr);
  if (!state.header_done) {
    state.table.columns = std::move(state.fields);
    state.header_done = true;
  } else {
    add_fields(state.table, std::move(state.fields), state.record_line);
  }
  state.fields.clear();
}

// Python's csv module and pandas keep the spaces around unquoted fields; so does this reader.
int no_space(unsigned char) {
  return 0;
}

Table read_csv(std::string_view contents, const std::string& path) {
  contents = detail::without_byte_order_mark(contents);  // as split_lines() does for the others
  csv_parser parser;
  if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI) != 0) {
    throw Error(path + ": could not start the CSV parser");
  }
  csv_set_space_func(&parser, no_space);
  CsvState state;
  // Fed line by line, so that a record's line is known for error messages.
  size_t start = 0;
  std::string failure;
  while (start < contents.size() && failure.empty()) {
    size_t end = contents.find('\n', start);
    end = end == std::string_view::npos ? contents.size() : end + 1;
    const std::string_view line = contents.substr(start, end - start);
    if (csv_parse(&parser, line.data(), line.size(), on_csv_field, on_csv_record, &state) !=
        line.size()) {
      failure = csv_strerror(csv_error(&parser));
      break;
    }
    ++state.current_line;
    start = end;
  }
  if (failure.empty() && csv_fini(&parser, on_csv_field, on_csv_record, &state) != 0) {
    failure = csv_strerror(csv_error(&parser));
    state.current_line = std::max<int64_t>(1, state.current_line - 1);
  }
  csv_free(&parser);
  if (!failure.empty()) {
    throw Error(path + ":" + std::to_string(state.current_line) + ": malformed CSV (" + failure +
                "; a field with a quote, comma or line break must be in double quotes, with "
                "quotes doubled)");
  }
  if (!state.header_done) throw Error(path + ": file is empty (expected a header of columns)");
  state.table.available = "the file has " + state.table.column_list();
  return std::move(state.table);
}

Table read_tsv(std::string_view contents, const std::string& path) {
  const std::vector<std::string> lines = detail::split_lines(contents);
  if (lines.empty()) throw Error(path + ": file is empty (expected a header of columns)");
  Table table;
  table.columns = detail::split_tabs(lines[0]);
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    add_fields(table, detail::split_tabs(lines[i]), static_cast<int64_t>(i) + 1);
  }
  table.available = "the file has " + table.column_list();
  return table;
}

// A JSON value as a column's string: strings as they are, integers in decimal, booleans as
// true/false, other numbers as JSON writes them; std::nullopt for null. Arrays and objects are
// no text or label.
std::optional<std::string> json_field(const nlohmann::json& value, const std::string& key) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) return value.get<std::string>();
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  // Unsigned first: nlohmann/json counts those as integers too, and get<int64_t>() would wrap
  // one above INT64_MAX to a negative label.
  if (value.is_number_unsigned()) return std::to_string(value.get<uint64_t>());
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  if (value.is_number()) return json_text(value);
  throw Error("key \"" + key + "\" holds " + std::string(value.type_name()) +
              ", expected a string or a number");
}

// JSON lines: the columns are the keys `wanted` names (the others are ignored); a key in no row
// is no column.
Table read_json_lines(std::string_view contents, const std::string& path,
                      const std::vector<std::string>& wanted) {
  const std::vector<std::string> lines = detail::split_lines(contents);
  Table table;
  std::set<std::string> seen;
  std::vector<std::map<std::string, std::optional<std::string>>> objects;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (detail::is_blank(lines[i])) continue;
    Row row;
    row.line = static_cast<int64_t>(i) + 1;
    std::map<std::string, std::optional<std::string>> object;
    try {
      check_json_nesting(lines[i], "");
      const nlohmann::json value = nlohmann::json::parse(lines[i]);
      if (!value.is_object()) {
        throw Error(std::string("expected a JSON object, found ") + value.type_name());
      }
      if (table.available.empty()) {
        std::string keys;
        for (const auto& item : value.items()) keys += (keys.empty() ? "" : ", ") + item.key();
        table.available = "line " + std::to_string(row.line) + " has keys " +
                          (keys.empty() ? std::string("none") : keys);
      }
      for (const auto& key : wanted) {
        auto it = value.find(key);
        if (it == value.end()) continue;
        object[key] = json_field(*it, key);
        seen.insert(key);
      }
    } catch (const nlohmann::json::exception& e) {
      row.error = std::string("invalid JSON (") + e.what() + ")";
    } catch (const Error& e) {
      row.error = e.what();
    }
    table.rows.push_back(std::move(row));
    objects.push_back(std::move(object));
  }
  if (table.rows.empty()) throw Error(path + ": file is empty (expected JSON objects, one a line)");
  for (const auto& key : wanted) {
    if (seen.count(key)) table.columns.push_back(key);
  }
  for (size_t r = 0; r < table.rows.size(); ++r) {
    for (const auto& column : table.columns) {
      auto it = objects[r].find(column);
      table.rows[r].values.push_back(it == objects[r].end() ? std::nullopt : it->second);
    }
  }
  return table;
}

Table read_table(std::string_view contents, const std::string& path,
                 const TextFileOptions& options) {
  switch (text_file_format(path, options.format)) {
    case TextFileFormat::kCsv:
      return read_csv(contents, path);
    case TextFileFormat::kTsv:
      return read_tsv(contents, path);
    default: {
      std::vector<std::string> wanted{options.text_column};
      if (!options.label_column.empty()) wanted.push_back(options.label_column);
      if (options.pair_column) wanted.push_back(*options.pair_column);
      return read_json_lines(contents, path, wanted);
    }
  }
}

// The value of `column` in `row`, which must be there and, for texts, not blank.
const std::string& field(const Row& row, int column, const std::string& name, bool text) {
  const std::optional<std::string>& value = row.values.at(static_cast<size_t>(column));
  if (!value) throw Error("no \"" + name + "\"");
  if (text ? detail::is_blank(*value) : value->empty()) {
    throw Error(std::string("empty ") + (text ? "text" : "label") + " in column \"" + name + "\"");
  }
  return *value;
}

// The example's class id, or its regression target, from the label column's `value`.
void set_target(const TaskDescription& task, const std::string& value, TextExample& example) {
  if (!task.regression()) {
    example.label = task.label_id(value);
    return;
  }
  char* end = nullptr;
  const double target = std::strtod(value.c_str(), &end);
  if (*end != '\0' || !std::isfinite(target)) {
    throw Error("target \"" + value + "\" is not a finite number (task " + task.name +
                " is a regression)");
  }
  example.score = target;
}

}  // namespace

TextFileFormat text_file_format(const std::string& path, TextFileFormat format) {
  if (format != TextFileFormat::kAuto) return format;
  std::string lower;
  for (char c : path) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ends_with(lower, ".csv")) return TextFileFormat::kCsv;
  if (ends_with(lower, ".tsv")) return TextFileFormat::kTsv;
  if (ends_with(lower, ".jsonl") || ends_with(lower, ".json")) return TextFileFormat::kJsonLines;
  throw Error(path +
              ": cannot tell the format from the name (expected .csv, .tsv, .jsonl or .json; or "
              "give the format)");
}

TextDataset read_text_dataset(const TaskDescription& task, const std::string& path,
                              const TextFileOptions& options) {
  return parse_text_dataset(task, read_file(path), path, options);
}

TextDataset parse_text_dataset(const TaskDescription& task, std::string_view contents,
                               const std::string& path, const TextFileOptions& options) {
  task.validate();
  if (task.sentence_pair && !options.pair_column) {
    throw Error(path + ": task " + task.name + " reads text pairs, but no pair column is given");
  }
  if (!task.sentence_pair && options.pair_column) {
    throw Error(path + ": task " + task.name + " reads single texts, but a pair column (\"" +
                *options.pair_column + "\") is given");
  }
  const Table table = read_table(contents, path, options);
  // A header naming a column twice leaves which one is meant to chance (Python's csv takes the
  // last, pandas renames it): refused when the task reads it.
  for (const std::string* name : {&options.text_column, &options.label_column,
                                  options.pair_column ? &*options.pair_column : nullptr}) {
    if (name == nullptr || name->empty()) continue;
    const auto count = std::count(table.columns.begin(), table.columns.end(), *name);
    if (count > 1) {
      throw Error(path + ": the header names column \"" + *name + "\" " + std::to_string(count) +
                  " times (" + table.available + ")");
    }
  }
  const int text = table.column(options.text_column);
  const int pair = options.pair_column ? table.column(*options.pair_column) : -1;
  const int label = options.label_column.empty() ? -1 : table.column(options.label_column);
  for (const auto& [index, name] :
       {std::pair<int, const std::string*>{text, &options.text_column},
        {pair, options.pair_column ? &*options.pair_column : nullptr}}) {
    if (name && index < 0) {
      // A file whose rows cannot be read at all (bad JSON) says so before it says what it lacks.
      for (const Row& row : table.rows) {
        if (!row.error.empty() && !options.skip_malformed) {
          throw Error(path + ":" + std::to_string(row.line) + ": " + row.error);
        }
      }
      throw Error(path + ": no column \"" + *name + "\" (" +
                  (table.available.empty() ? "no line holds a JSON object" : table.available) +
                  ")");
    }
  }
  TextDataset data;
  data.task = &task;
  data.path = path;
  data.labelled = label >= 0;
  for (const Row& row : table.rows) {
    const std::string where = path + ":" + std::to_string(row.line);
    try {
      if (!row.error.empty()) throw Error(row.error);
      TextExample example;
      example.index = static_cast<int64_t>(data.examples.size() + data.skipped.size());
      example.line = row.line;
      example.text_a = field(row, text, options.text_column, true);
      if (pair >= 0) example.text_b = field(row, pair, *options.pair_column, true);
      if (label >= 0) {
        const std::string& value = field(row, label, options.label_column, false);
        try {
          set_target(task, value, example);
        } catch (const Error& e) {
          throw Error("column \"" + options.label_column + "\": " + e.what());
        }
      }
      data.examples.push_back(std::move(example));
    } catch (const Error& e) {
      const std::string message = where + ": " + e.what();
      if (!options.skip_malformed) throw Error(message);
      data.skipped.push_back(message);
    }
  }
  return data;
}

std::vector<std::string> read_text_dataset_labels(const std::string& path,
                                                  const TextFileOptions& options) {
  const Table table = read_table(read_file(path), path, options);
  const int label = table.column(options.label_column);
  if (label < 0) {
    throw Error(path + ": no label column \"" + options.label_column +
                "\" to take the labels from (" + table.available + ")");
  }
  std::set<std::string> labels;
  for (const Row& row : table.rows) {
    try {
      if (!row.error.empty()) throw Error(row.error);
      labels.insert(field(row, label, options.label_column, false));
    } catch (const Error& e) {
      if (!options.skip_malformed)
        throw Error(path + ":" + std::to_string(row.line) + ": " + e.what());
    }
  }
  if (labels.empty()) throw Error(path + ": no labels in column \"" + options.label_column + "\"");
  std::vector<std::string> sorted(labels.begin(), labels.end());
  auto integer = [](const std::string& s) {
    char* end = nullptr;
    std::strtoll(s.c_str(), &end, 10);
    return !s.empty() && *end == '\0';
  };
  if (std::all_of(sorted.begin(), sorted.end(), integer)) {
    std::sort(sorted.begin(), sorted.end(), [](const std::string& a, const std::string& b) {
      return std::strtoll(a.c_str(), nullptr, 10) < std::strtoll(b.c_str(), nullptr, 10);
    });
  }
  return sorted;
}

TextDataset parse_text_lines(const TaskDescription& task, std::string_view contents,
                             const std::string& source) {
  TextDataset data;
  data.task = &task;
  data.path = source;
  const std::vector<std::string> lines = detail::split_lines(contents);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string where = source + ":" + std::to_string(i + 1);
    const std::vector<std::string> fields = detail::split_tabs(lines[i]);
    const size_t expected = task.sentence_pair ? 2 : 1;
    if (fields.size() != expected) {
      throw Error(where + ": " + std::to_string(fields.size()) + " tab-separated field" +
                  (fields.size() == 1 ? "" : "s") + ", but " + task.name + " takes " +
                  (task.sentence_pair ? "text<TAB>text_pair" : "one text (no TAB)") + " per line");
    }
    for (size_t f = 0; f < fields.size(); ++f) {
      if (detail::is_blank(fields[f])) {
        throw Error(
            where +
            (lines[i].empty() ? ": empty line" : ": empty text in field " + std::to_string(f + 1)) +
            " (expected " + (task.sentence_pair ? "text<TAB>text_pair" : "a text") + ")");
      }
    }
    TextExample example;
    example.index = static_cast<int64_t>(i);
    example.line = static_cast<int64_t>(i) + 1;
    example.text_a = fields[0];
    if (task.sentence_pair) example.text_b = fields[1];
    data.examples.push_back(std::move(example));
  }
  return data;
}

}  // namespace adaptertune
