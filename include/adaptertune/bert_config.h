#pragma once
/// @file bert_config.h
/// Architecture of a BERT-style encoder, read from and written to Hugging Face `config.json`.

#include <cstdint>
#include <string>

namespace adaptertune {

/// Tokens per sentence or pair when none is asked for or recorded (BERT's GLUE fine-tuning
/// length), at most the model's positions (BertConfig::default_sequence_length()).
inline constexpr int64_t kDefaultMaxLength = 128;

/// Hyper-parameters of a BERT encoder. Field names and JSON keys are those of Hugging Face's
/// `BertConfig`, so a `config.json` from the Python ecosystem loads as it is. Defaults are
/// bert-base-uncased.
struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  /// Activation of the feed-forward sublayer: "gelu" (exact, erf), "gelu_new" /
  /// "gelu_pytorch_tanh" (tanh approximation), "relu", "silu"/"swish" or "tanh".
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  int64_t pad_token_id = 0;
  /// Only "absolute" is supported; the key is kept so that files round-trip.
  std::string position_embedding_type = "absolute";
  std::string model_type = "bert";

  /// Checks every value; throws Error naming the first bad key and what was expected.
  void validate() const;
  /// Throws Error when sequences of `length` tokens do not fit the position embeddings;
  /// `what` names where the length comes from (e.g. "--max-length").
  void check_sequence_length(int64_t length, const std::string& what) const;
  /// The length used when none is asked for: `preferred` (kDefaultMaxLength for a sentence or a
  /// pair, SQuAD's 384 for a span task's windows), or every position when the model has fewer.
  int64_t default_sequence_length(int64_t preferred) const;

  /// Size of one attention head (hidden_size / num_attention_heads).
  int64_t head_size() const { return hidden_size / num_attention_heads; }

  /// Parses a `config.json` document. Keys this struct does not model are allowed when Hugging
  /// Face writes them (`architectures`, `torch_dtype`, `transformers_version`, …); any other key is
  /// reported as an Error naming `source`. The result is validated.
  static BertConfig from_json_string(const std::string& json,
                                     const std::string& source = "<string>");
  /// Reads and parses the file at `path` (see from_json_string()).
  static BertConfig from_file(const std::string& path);
  /// Writes the Hugging Face `config.json` document for this config.
  std::string to_json_string() const;
  /// Writes to_json_string() to `path` atomically (temporary file + rename).
  void save(const std::string& path) const;

  /// bert-base-uncased (L=12, d=768, 12 heads, ff=3072).
  static BertConfig bert_base();
  /// bert-large-uncased (L=24, d=1024, 16 heads, ff=4096).
  static BertConfig bert_large();

  bool operator==(const BertConfig& other) const;
  bool operator!=(const BertConfig& other) const { return !(*this == other); }
};

}  // namespace adaptertune
