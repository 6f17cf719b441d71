#include "adaptertune/bert_config.h"

#include <algorithm>

#include "adaptertune/activation_name.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "json_util.h"

namespace adaptertune {
namespace {

void require(bool condition, const std::string& key, const std::string& expected,
             const std::string& found) {
  if (!condition) {
    throw Error("BertConfig: '" + key + "' must be " + expected + ", got " + found);
  }
}

}  // namespace

void BertConfig::check_sequence_length(int64_t length, const std::string& what) const {
  if (length > max_position_embeddings) {
    throw Error(what + " " + std::to_string(length) +
                " is more than the model's max_position_embeddings (" +
                std::to_string(max_position_embeddings) + ")");
  }
}

int64_t BertConfig::default_sequence_length(int64_t preferred) const {
  return std::min(preferred, max_position_embeddings);
}

void BertConfig::validate() const {
  require(vocab_size > 0, "vocab_size", "positive", std::to_string(vocab_size));
  require(hidden_size > 0, "hidden_size", "positive", std::to_string(hidden_size));
  require(num_hidden_layers > 0, "num_hidden_layers", "positive",
          std::to_string(num_hidden_layers));
  require(num_attention_heads > 0, "num_attention_heads", "positive",
          std::to_string(num_attention_heads));
  require(hidden_size % num_attention_heads == 0, "hidden_size",
          "a multiple of num_attention_heads (" + std::to_string(num_attention_heads) + ")",
          std::to_string(hidden_size));
  require(intermediate_size > 0, "intermediate_size", "positive",
          std::to_string(intermediate_size));
  require(max_position_embeddings > 0, "max_position_embeddings", "positive",
          std::to_string(max_position_embeddings));
  require(type_vocab_size > 0, "type_vocab_size", "positive", std::to_string(type_vocab_size));
  require(hidden_dropout_prob >= 0 && hidden_dropout_prob < 1, "hidden_dropout_prob", "in [0, 1)",
          format_number(hidden_dropout_prob));
  require(attention_probs_dropout_prob >= 0 && attention_probs_dropout_prob < 1,
          "attention_probs_dropout_prob", "in [0, 1)", format_number(attention_probs_dropout_prob));
  require(layer_norm_eps > 0, "layer_norm_eps", "positive", format_number(layer_norm_eps));
  require(initializer_range > 0, "initializer_range", "positive", format_number(initializer_range));
  require(pad_token_id >= 0 && pad_token_id < vocab_size, "pad_token_id", "in [0, vocab_size)",
          std::to_string(pad_token_id));
  require(position_embedding_type == "absolute", "position_embedding_type", "\"absolute\"",
          "\"" + position_embedding_type + "\"");
  parse_activation(hidden_act, "BertConfig: 'hidden_act'");
}

BertConfig BertConfig::from_json_string(const std::string& json, const std::string& source) {
  detail::Json document = detail::parse_json(json, source);
  detail::JsonObjectReader reader(document, source);
  BertConfig config;
  reader.read("vocab_size", config.vocab_size);
  reader.read("hidden_size", config.hidden_size);
  reader.read("num_hidden_layers", config.num_hidden_layers);
  reader.read("num_attention_heads", config.num_attention_heads);
  reader.read("intermediate_size", config.intermediate_size);
  reader.read("hidden_act", config.hidden_act);
  reader.read("hidden_dropout_prob", config.hidden_dropout_prob);
  reader.read("attention_probs_dropout_prob", config.attention_probs_dropout_prob);
  reader.read("max_position_embeddings", config.max_position_embeddings);
  reader.read("type_vocab_size", config.type_vocab_size);
  reader.read("initializer_range", config.initializer_range);
  reader.read("layer_norm_eps", config.layer_norm_eps);
  reader.read("pad_token_id", config.pad_token_id);
  reader.read("position_embedding_type", config.position_embedding_type);
  reader.read("model_type", config.model_type);
  // Keys that Hugging Face writes for bookkeeping, generation or the task head. The head keys
  // are read by the checkpoint loader, not here.
  // `adaptertune`: what a fine-tuning run records of how the directory's model runs
  // (read_model_directory_record()).
  reader.ignore({"adaptertune",
                 "architectures",
                 "transformers_version",
                 "torch_dtype",
                 "use_cache",
                 "gradient_checkpointing",
                 "_name_or_path",
                 "classifier_dropout",
                 "id2label",
                 "label2id",
                 "num_labels",
                 "problem_type",
                 "finetuning_task",
                 "output_attentions",
                 "output_hidden_states",
                 "return_dict",
                 "bos_token_id",
                 "eos_token_id",
                 "is_decoder",
                 "add_cross_attention",
                 "chunk_size_feed_forward",
                 "tie_word_embeddings",
                 "adapters",
                 "directionality",
                 "pooler_fc_size",
                 "pooler_num_attention_heads",
                 "pooler_num_fc_layers",
                 "pooler_size_per_head",
                 "pooler_type"});
  reader.finish();
  if (config.model_type != "bert") {
    throw Error(source + ": 'model_type' must be \"bert\", got \"" + config.model_type + "\"");
  }
  try {
    config.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return config;
}

BertConfig BertConfig::from_file(const std::string& path) {
  return from_json_string(read_file(path), path);
}

std::string BertConfig::to_json_string() const {
  detail::Json j = {
      {"architectures", {"BertModel"}},
      {"model_type", model_type},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"intermediate_size", intermediate_size},
      {"hidden_act", hidden_act},
      {"hidden_dropout_prob", hidden_dropout_prob},
      {"attention_probs_dropout_prob", attention_probs_dropout_prob},
      {"max_position_embeddings", max_position_embeddings},
      {"type_vocab_size", type_vocab_size},
      {"initializer_range", initializer_range},
      {"layer_norm_eps", layer_norm_eps},
      {"pad_token_id", pad_token_id},
      {"position_embedding_type", position_embedding_type},
  };
  return json_text(j, 2) + "\n";
}

void BertConfig::save(const std::string& path) const {
  write_file_atomic(path, to_json_string());
}

BertConfig BertConfig::bert_base() {
  return BertConfig{};
}

BertConfig BertConfig::bert_large() {
  BertConfig config;
  config.hidden_size = 1024;
  config.num_hidden_layers = 24;
  config.num_attention_heads = 16;
  config.intermediate_size = 4096;
  return config;
}

bool BertConfig::operator==(const BertConfig& o) const {
  return vocab_size == o.vocab_size && hidden_size == o.hidden_size &&
         num_hidden_layers == o.num_hidden_layers && num_attention_heads == o.num_attention_heads &&
         intermediate_size == o.intermediate_size && hidden_act == o.hidden_act &&
         hidden_dropout_prob == o.hidden_dropout_prob &&
         attention_probs_dropout_prob == o.attention_probs_dropout_prob &&
         max_position_embeddings == o.max_position_embeddings &&
         type_vocab_size == o.type_vocab_size && initializer_range == o.initializer_range &&
         layer_norm_eps == o.layer_norm_eps && pad_token_id == o.pad_token_id &&
         position_embedding_type == o.position_embedding_type && model_type == o.model_type;
}

}  // namespace adaptertune
