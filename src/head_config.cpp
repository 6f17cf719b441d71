#include "adaptertune/head_config.h"

#include <string>
#include <vector>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "json_util.h"
#include "text/unicode.h"

namespace adaptertune {

HeadConfig HeadConfig::regression() {
  HeadConfig head;
  head.num_labels = 1;
  head.problem_type = ProblemType::kRegression;
  return head;
}

HeadConfig HeadConfig::classification(std::vector<std::string> labels) {
  HeadConfig head;
  head.num_labels = static_cast<int64_t>(labels.size());
  head.id2label = std::move(labels);
  return head;
}

void HeadConfig::validate() const {
  if (problem_type == ProblemType::kRegression && num_labels != 1) {
    throw Error("HeadConfig: a regression head has num_labels 1, got " +
                std::to_string(num_labels));
  }
  if (problem_type == ProblemType::kSingleLabelClassification && num_labels < 2) {
    throw Error("HeadConfig: a classification head needs num_labels >= 2, got " +
                std::to_string(num_labels));
  }
  if (!id2label.empty() && static_cast<int64_t>(id2label.size()) != num_labels) {
    throw Error("HeadConfig: id2label has " + std::to_string(id2label.size()) +
                " names for num_labels " + std::to_string(num_labels));
  }
  for (size_t i = 0; i < id2label.size(); ++i) {
    // Written into head_config.json and config.json: valid UTF-8 only.
    detail::check_utf8(id2label[i], "HeadConfig: id2label " + std::to_string(i));
  }
  if (classifier_dropout >= 1.0) {
    throw Error("HeadConfig: 'classifier_dropout' must be below 1, got " +
                format_number(classifier_dropout));
  }
}

HeadConfig HeadConfig::from_json_string(const std::string& json, const std::string& source) {
  detail::Json document = detail::parse_json(json, source);
  detail::JsonObjectReader reader(document, source);
  HeadConfig head;
  reader.read("num_labels", head.num_labels);
  std::string problem = "single_label_classification";
  reader.read("problem_type", problem);
  if (problem == "regression") {
    head.problem_type = ProblemType::kRegression;
  } else if (problem != "single_label_classification") {
    reader.fail("problem_type", "\"single_label_classification\" or \"regression\"");
  }
  if (const detail::Json* labels = reader.take("id2label"); labels && !labels->is_null()) {
    if (!labels->is_object()) reader.fail("id2label", "an object {\"0\": name, …}");
    head.id2label.assign(labels->size(), "");
    std::vector<bool> named(labels->size(), false);
    for (auto it = labels->begin(); it != labels->end(); ++it) {
      // Hugging Face writes the ids in decimal. Anything else (" 1", "1x", which std::stoul
      // reads as 1) is no id, and an id named twice ("1" and "01") leaves another without a name.
      const std::string& id = it.key();
      if (id.empty() || id.size() > 9 || id.find_first_not_of("0123456789") != std::string::npos) {
        reader.fail("id2label", "keyed by class ids \"0\", \"1\", …");
      }
      const size_t index = std::stoul(id);
      if (index >= named.size() || named[index] || !it->is_string()) {
        reader.fail("id2label", "a name for each id 0..n-1, once each");
      }
      named[index] = true;
      head.id2label[index] = it->get<std::string>();
    }
  }
  if (const detail::Json* dropout = reader.take("classifier_dropout");
      dropout && !dropout->is_null()) {
    // In the file null is "the encoder's"; a negative number (the struct's own way to say so)
    // is no probability, and taking it as null would hide the mistake.
    if (!dropout->is_number() || dropout->get<double>() < 0) {
      reader.fail("classifier_dropout", "null or a probability in [0, 1)");
    }
    head.classifier_dropout = dropout->get<double>();
  }
  // Hugging Face derives num_labels from id2label when only the latter is written.
  if (!reader.has("num_labels") && !head.id2label.empty()) {
    head.num_labels = static_cast<int64_t>(head.id2label.size());
  }
  reader.ignore({"label2id"});
  reader.finish();
  try {
    head.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return head;
}

HeadConfig HeadConfig::from_model_config(const std::string& json, const std::string& source) {
  detail::Json document = detail::parse_json(json, source);
  if (!document.is_object()) throw Error(source + ": expected a JSON object");
  detail::Json head = detail::Json::object();
  for (const char* key : {"num_labels", "id2label", "problem_type", "classifier_dropout"}) {
    if (document.contains(key) && !document[key].is_null()) head[key] = document[key];
  }
  if (head.contains("num_labels") && head["num_labels"] == 1 && !head.contains("problem_type")) {
    head["problem_type"] = "regression";
  }
  return from_json_string(json_text(head), source);
}

std::string HeadConfig::label_name(int64_t index) const {
  const auto i = static_cast<size_t>(index);
  return i < id2label.size() ? id2label[i] : "LABEL_" + std::to_string(index);
}

std::string HeadConfig::to_json_string() const {
  detail::Json j = {
      {"num_labels", num_labels},
      {"problem_type",
       problem_type == ProblemType::kRegression ? "regression" : "single_label_classification"},
  };
  if (!id2label.empty()) {
    detail::Json names = detail::Json::object();
    detail::Json ids = detail::Json::object();
    for (size_t i = 0; i < id2label.size(); ++i) {
      names[std::to_string(i)] = id2label[i];
      ids[id2label[i]] = i;
    }
    j["id2label"] = names;
    j["label2id"] = ids;
  }
  j["classifier_dropout"] =
      classifier_dropout < 0 ? detail::Json(nullptr) : detail::Json(classifier_dropout);
  return json_text(j, 2) + "\n";
}

bool HeadConfig::operator==(const HeadConfig& o) const {
  return num_labels == o.num_labels && problem_type == o.problem_type && id2label == o.id2label &&
         classifier_dropout == o.classifier_dropout;
}

}  // namespace adaptertune
