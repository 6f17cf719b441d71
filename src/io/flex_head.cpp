#include "io/flex_head.h"

#include <map>
#include <vector>

#include <ATen/ATen.h>

#include "adaptertune/error.h"
#include "adaptertune/format.h"

namespace adaptertune::detail {

const char* const kPoolerWeight = "bert.pooler.dense.weight";
const char* const kPoolerBias = "bert.pooler.dense.bias";

namespace {

const char* const kReadable =
    "adaptertune reads a classification head of 1 layer on the pooler's output (use_pooler) or "
    "of 2 layers with tanh on [CLS] (AdapterHub's default), and a question_answering head of 1 "
    "layer";

// The labels' names in id order, from AdapterHub's label2id ({name: id}); empty for null.
std::vector<std::string> labels_by_id(const Json* label2id, int64_t num_labels,
                                      JsonObjectReader& reader) {
  if (label2id == nullptr || label2id->is_null()) return {};
  const std::string expected = "null or an object mapping " + std::to_string(num_labels) +
                               " label names to the ids 0.." + std::to_string(num_labels - 1);
  if (!label2id->is_object() || static_cast<int64_t>(label2id->size()) != num_labels) {
    reader.fail("label2id", expected);
  }
  std::vector<std::string> names(static_cast<size_t>(num_labels));
  std::vector<bool> seen(names.size(), false);
  for (const auto& [name, id] : label2id->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= num_labels ||
        seen[id.get<size_t>()]) {
      reader.fail("label2id", expected);
    }
    seen[id.get<size_t>()] = true;
    names[id.get<size_t>()] = name;
  }
  return names;
}

// The head as `config` (head_config.json's "config", at `source`) sets it; Error for a malformed
// setting, and `unreadable` set for a well-formed head with no static layout.
void read_settings(const Json& config, const std::string& source, FlexHead& head) {
  JsonObjectReader reader(config, source);  // Error for anything but an object
  std::string type;
  reader.read("head_type", type);
  if (type.empty()) reader.fail("head_type", "the head's type, e.g. \"classification\"");
  const bool span = type == "question_answering";
  // ClassificationHead's and QuestionAnsweringHead's defaults for what the file leaves out.
  int64_t layers = span ? 1 : 2;
  int64_t num_labels = 2;
  bool use_pooler = false;
  std::string activation = "tanh";
  reader.read("layers", layers);
  reader.read("num_labels", num_labels);
  if (num_labels < 1) reader.fail("num_labels", "at least 1");
  if (const Json* value = reader.take("activation_function")) {
    if (value->is_null()) {
      activation.clear();  // no activation between layers
    } else if (value->is_string()) {
      activation = value->get<std::string>();
    } else {
      reader.fail("activation_function", "null or an activation's name, e.g. \"tanh\"");
    }
  }
  if (const Json* value = reader.take("use_pooler"); value && !value->is_null()) {
    if (!value->is_boolean()) reader.fail("use_pooler", "true or false");
    use_pooler = value->get<bool>();
  }
  if (const Json* value = reader.take("bias"); value && !value->is_null()) {
    if (!value->is_boolean()) reader.fail("bias", "true or false");
    head.bias = value->get<bool>();
  }
  const std::vector<std::string> labels = labels_by_id(reader.take("label2id"), num_labels, reader);
  double dropout = -1.0;  // HeadConfig's "none of its own"
  if (const Json* value = reader.take("dropout_prob"); value && !value->is_null()) {
    if (!value->is_number() || value->get<double>() < 0 || value->get<double>() >= 1) {
      reader.fail("dropout_prob", "null or a probability in [0, 1)");
    }
    dropout = value->get<double>();
  }
  reader.finish();

  std::string what =
      "an AdapterHub flex head (head_type \"" + type + "\", layers " + std::to_string(layers);
  if (span) {
    if (num_labels != 2) what += ", num_labels " + std::to_string(num_labels);
  } else {
    what += ", activation_function " +
            (activation.empty() ? std::string("null") : "\"" + activation + "\"") +
            ", use_pooler " + (use_pooler ? "true" : "false");
  }
  what += ")";
  const std::string refusal = source + ": " + what + " has no static BERT layout; " + kReadable;
  head.span = span;
  if (span) {
    if (layers != 1 || num_labels != 2) head.unreadable = refusal;
    head.layout = FlexHeadLayout::kSpanLinear;
    return;
  }
  if (type != "classification") {
    head.unreadable = refusal;
    return;
  }
  if (layers == 1 && use_pooler) {
    head.layout = FlexHeadLayout::kPooledLinear;
  } else if (layers == 2 && !use_pooler && activation == "tanh") {
    head.layout = FlexHeadLayout::kClsTanhTwoLayers;
  } else {
    head.unreadable = refusal;
  }
  head.head.num_labels = num_labels;
  head.head.problem_type =
      num_labels == 1 ? ProblemType::kRegression : ProblemType::kSingleLabelClassification;
  head.head.id2label = labels;
  head.head.classifier_dropout = dropout;
  head.head.validate();
}

}  // namespace

std::optional<FlexHead> read_flex_head(const Json& document, const std::string& path) {
  if (!document.is_object()) return std::nullopt;  // the static head's reader says what is wrong
  const auto config = document.find("config");
  if (config == document.end() || config->is_null()) return std::nullopt;
  FlexHead head;
  try {
    if (!config->is_object()) {
      throw Error(path +
                  ": key 'config' must be null (a static head) or an object (an AdapterHub "
                  "flex head), found " +
                  json_text(*config));
    }
    const auto name = document.find("name");
    if (name == document.end() || !name->is_string() || name->get<std::string>().empty()) {
      throw Error(path +
                  ": key 'name' must be the flex head's name (its tensors are "
                  "heads.<name>.*), found " +
                  (name == document.end() ? std::string("nothing") : json_text(*name)));
    }
    head.name = name->get<std::string>();
    // The keys around the settings, as AdapterHub's save_head() writes them: the shapes say
    // whether the hidden size fits (when the tensors load); the rest is bookkeeping.
    JsonObjectReader outer(document, path);
    outer.take("config");
    outer.take("name");
    int64_t hidden_size = 0;
    outer.read("hidden_size", hidden_size);
    if (outer.has("hidden_size") && hidden_size < 1) outer.fail("hidden_size", "positive");
    std::string model_type = "bert";
    outer.read("model_type", model_type);
    if (model_type != "bert") outer.fail("model_type", "\"bert\"");
    outer.ignore({"model_class", "model_name", "version"});
    outer.finish();
    read_settings(*config, path + " (config)", head);
  } catch (const Error& e) {
    head.unreadable = e.what();
  }
  return head;
}

NamedTensors static_head_tensors(const FlexHead& head, const NamedTensors& tensors,
                                 const std::string& path) {
  if (!head.unreadable.empty()) throw Error(head.unreadable);
  // The static name of each layer's weight and bias, by the flex layer's index.
  std::map<std::string, std::string> names;
  std::string last;  // the index of the layer that gives the outputs
  switch (head.layout) {
    case FlexHeadLayout::kPooledLinear:
      last = "1";
      names = {{"1.weight", "classifier.weight"}, {"1.bias", "classifier.bias"}};
      break;
    case FlexHeadLayout::kClsTanhTwoLayers:
      // Dropout, Linear, Tanh, Dropout, Linear: the layers are modules 1 and 4.
      last = "4";
      names = {{"1.weight", kPoolerWeight},
               {"1.bias", kPoolerBias},
               {"4.weight", "classifier.weight"},
               {"4.bias", "classifier.bias"}};
      break;
    case FlexHeadLayout::kSpanLinear:
      last = "1";
      names = {{"1.weight", "qa_outputs.weight"}, {"1.bias", "qa_outputs.bias"}};
      break;
  }
  if (!head.bias) names.erase(last + ".bias");
  const std::string prefix = "heads." + head.name + ".";
  NamedTensors out;
  std::map<std::string, at::Tensor> found;
  for (const auto& [name, tensor] : tensors) {
    const auto place =
        name.rfind(prefix, 0) == 0 ? names.find(name.substr(prefix.size())) : names.end();
    if (place == names.end()) {
      throw Error(path + ": tensor \"" + name + "\" is not a layer of the flex head \"" +
                  head.name + "\" as its head_config.json describes it" +
                  (head.bias ? "" : " (\"bias\": false)"));
    }
    found[place->first] = tensor;
    out.emplace_back(place->second, tensor);
  }
  for (const auto& [layer, name] : names) {
    if (found.count(layer) == 0) {
      throw Error(path + ": lacks tensor \"" + prefix + layer + "\", which the flex head's " +
                  "head_config.json says it has");
    }
  }
  if (!head.bias) {
    // No bias reads as a bias of zeros: the same outputs.
    const std::string weight_name = names.at(last + ".weight");  // "….weight"
    const at::Tensor& weight = found.at(last + ".weight");
    out.emplace_back(weight_name.substr(0, weight_name.size() - 6) + "bias",
                     at::zeros({weight.size(0)}, weight.options()));
  }
  return out;
}

}  // namespace adaptertune::detail
