#include "adaptertune/inference/task_request.h"

#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/format.h"

namespace adaptertune {

TaskRequest parse_task_request(const std::string& json_line, const std::string& where) {
  check_json_nesting(json_line, where);
  nlohmann::json input;
  try {
    input = nlohmann::json::parse(json_line);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": invalid JSON: " + e.what());
  }
  if (!input.is_object() || !input.contains("text") || !input["text"].is_string()) {
    throw Error(where + ": expected {\"text\": string}");
  }
  TaskRequest request;
  request.text = input["text"].get<std::string>();
  for (const char* key : {"task", "text_pair"}) {
    if (!input.contains(key) || input[key].is_null()) continue;
    if (!input[key].is_string()) {
      throw Error(where + ": \"" + key + "\" must be a string or null");
    }
    (std::string(key) == "task" ? request.task : request.text_pair) = input[key].get<std::string>();
  }
  for (auto it = input.begin(); it != input.end(); ++it) {
    if (it.key() != "task" && it.key() != "text" && it.key() != "text_pair") {
      throw Error(where + ": unknown key \"" + it.key() +
                  "\" (expected \"task\", \"text\", \"text_pair\")");
    }
  }
  return request;
}

TaskRequests parse_task_requests(std::string_view contents, const std::string& source) {
  TaskRequests out;
  size_t start = 0;
  for (int64_t number = 1; start < contents.size(); ++number) {
    size_t end = contents.find('\n', start);
    if (end == std::string_view::npos) end = contents.size();
    std::string line(contents.substr(start, end - start));
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines
    out.where.push_back(source + ":" + std::to_string(number));
    out.requests.push_back(parse_task_request(line, out.where.back()));
  }
  return out;
}

}  // namespace adaptertune
