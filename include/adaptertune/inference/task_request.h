#pragma once
/// @file task_request.h
/// Requests that name their task, as JSON lines (`predict --input FILE.jsonl`, the server's
/// bodies). Plain C++ and nlohmann/json only, so that the reader can be fuzzed on its own.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace adaptertune {

/// A text for a named task; no task runs the plain base with the model directory's own head
/// (AdapterHub users call this the "identity adapter").
struct TaskRequest {
  std::optional<std::string> task;
  std::string text;
  std::optional<std::string> text_pair;
};

/// Request lines read from a file or stdin, each with where it came from.
struct TaskRequests {
  std::vector<TaskRequest> requests;
  /// "SOURCE:LINE" of each request, for messages about it.
  std::vector<std::string> where;
};

/// Reads one request line of JSON: `{"task": NAME or null, "text": "...", "text_pair": "..." or
/// null}`; "task" and "text_pair" may be left out. `where` (e.g. "requests.jsonl:3") begins
/// the Error thrown for bad JSON, a missing or non-string "text", or an unknown key.
TaskRequest parse_task_request(const std::string& json_line, const std::string& where);

/// Reads JSON lines of requests (parse_task_request() on each line that is not blank; CR before
/// LF is dropped). `source` names the input in errors ("requests.jsonl:3: ...").
TaskRequests parse_task_requests(std::string_view contents, const std::string& source);

}  // namespace adaptertune
