#include "adaptertune/layers/heads.h"

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>

#include "adaptertune/error.h"
#include "json_util.h"
#include "shape_check.h"

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
  if (classifier_dropout >= 1.0) {
    throw Error("HeadConfig: 'classifier_dropout' must be below 1, got " +
                std::to_string(classifier_dropout));
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
    for (auto it = labels->begin(); it != labels->end(); ++it) {
      size_t index = 0;
      try {
        index = std::stoul(it.key());
      } catch (const std::exception&) {
        reader.fail("id2label", "keyed by class ids \"0\", \"1\", …");
      }
      if (index >= head.id2label.size() || !it->is_string()) {
        reader.fail("id2label", "a name for each id 0..n-1");
      }
      head.id2label[index] = it->get<std::string>();
    }
  }
  if (const detail::Json* dropout = reader.take("classifier_dropout");
      dropout && !dropout->is_null()) {
    if (!dropout->is_number()) reader.fail("classifier_dropout", "a number or null");
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
  return from_json_string(head.dump(), source);
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
  return j.dump(2) + "\n";
}

bool HeadConfig::operator==(const HeadConfig& o) const {
  return num_labels == o.num_labels && problem_type == o.problem_type && id2label == o.id2label &&
         classifier_dropout == o.classifier_dropout;
}

BertForSequenceClassificationImpl::BertForSequenceClassificationImpl(const BertConfig& config,
                                                                     const HeadConfig& head)
    : head_(head) {
  head_.validate();
  bert = register_module("bert", BertModel(config));
  const double p =
      head_.classifier_dropout >= 0 ? head_.classifier_dropout : config.hidden_dropout_prob;
  dropout = register_module("dropout", torch::nn::Dropout(p));
  classifier =
      register_module("classifier", torch::nn::Linear(config.hidden_size, head_.num_labels));
  init_bert_weights(*classifier, config.initializer_range);
}

torch::Tensor BertForSequenceClassificationImpl::forward(const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask,
                                                         const torch::Tensor& token_type_ids) {
  return classifier(dropout(bert(input_ids, attention_mask, token_type_ids).pooler_output));
}

torch::Tensor BertForSequenceClassificationImpl::loss(const torch::Tensor& logits,
                                                      const torch::Tensor& labels) const {
  if (labels.dim() != 1 || labels.size(0) != logits.size(0)) {
    throw Error("loss: labels must have shape [" + std::to_string(logits.size(0)) + "], got " +
                detail::shape_string(labels));
  }
  if (head_.problem_type == ProblemType::kRegression) {
    if (!labels.is_floating_point()) throw Error("loss: regression targets must be floating point");
    return at::mse_loss(logits.squeeze(-1).to(at::kFloat), labels.to(at::kFloat));
  }
  if (labels.scalar_type() != at::kLong) throw Error("loss: class labels must be int64");
  if (labels.device().is_cpu() && labels.numel() > 0) {
    auto [min, max] = at::aminmax(labels);
    if (min.item<int64_t>() < 0 || max.item<int64_t>() >= head_.num_labels) {
      throw Error(
          "loss: label " +
          std::to_string(min.item<int64_t>() < 0 ? min.item<int64_t>() : max.item<int64_t>()) +
          " is outside [0, " + std::to_string(head_.num_labels) + ")");
    }
  }
  return at::cross_entropy_loss(logits.to(at::kFloat), labels);
}

BertForMaskedLMImpl::BertForMaskedLMImpl(const BertConfig& config)
    : activation_(parse_activation(config.hidden_act, "BertConfig: 'hidden_act'")) {
  bert = register_module("bert", BertModel(config, /*add_pooling_layer=*/false));
  // Registered under a "cls" submodule tree so that the names are Hugging Face's
  // cls.predictions.transform.{dense,LayerNorm} and cls.predictions.bias.
  auto cls = register_module("cls", std::make_shared<torch::nn::Module>());
  auto predictions = cls->register_module("predictions", std::make_shared<torch::nn::Module>());
  auto transform = predictions->register_module("transform", std::make_shared<torch::nn::Module>());
  transform_dense = transform->register_module(
      "dense", torch::nn::Linear(config.hidden_size, config.hidden_size));
  transform_norm = transform->register_module(
      "LayerNorm",
      torch::nn::LayerNorm(
          torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps)));
  decoder_bias = predictions->register_parameter("bias", torch::zeros({config.vocab_size}));
  init_bert_weights(*transform_dense, config.initializer_range);
}

std::pair<torch::Tensor, torch::Tensor> BertForMaskedLMImpl::masked_logits(
    const torch::Tensor& input_ids, const torch::Tensor& labels,
    const torch::Tensor& attention_mask) {
  detail::check_same_shape(labels, input_ids, "labels", "input_ids");
  torch::Tensor hidden = bert(input_ids, attention_mask).last_hidden_state;
  torch::Tensor positions = (labels.reshape(-1) != -100).nonzero().squeeze(-1);
  torch::Tensor selected = hidden.reshape({-1, hidden.size(-1)}).index_select(0, positions);
  // LayerNorm in float32: under CPU autocast the dense output is bf16 and LibTorch's CPU
  // layer_norm wants input and weight of one dtype.
  torch::Tensor h = transform_norm(apply_activation(activation_, transform_dense(selected))
                                       .to(transform_norm->weight.scalar_type()));
  // The decoder shares the word embedding matrix (weight tying, as in BERT).
  torch::Tensor logits =
      at::linear(h, bert->embeddings->word_embeddings->weight.to(h.scalar_type()), decoder_bias);
  return {logits, labels.reshape(-1).index_select(0, positions)};
}

torch::Tensor BertForMaskedLMImpl::loss(const torch::Tensor& input_ids, const torch::Tensor& labels,
                                        const torch::Tensor& attention_mask) {
  auto [logits, targets] = masked_logits(input_ids, labels, attention_mask);
  return at::cross_entropy_loss(logits.to(at::kFloat), targets);
}

}  // namespace adaptertune
