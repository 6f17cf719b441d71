#include "adaptertune/io/tokenizer_files.h"

#include "adaptertune/bert_config.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/text/sentencepiece_tokenizer.h"
#include "adaptertune/text/wordpiece.h"
#include "json_util.h"

namespace adaptertune {

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path, bool sentencepiece,
                                               bool lowercase) {
  if (sentencepiece) {
    SentencePieceOptions options;
    options.lowercase = lowercase;
    return std::make_unique<SentencePieceTokenizer>(path, options);
  }
  WordPieceOptions options;
  options.lowercase = lowercase;
  return std::make_unique<WordPieceTokenizer>(path, options);
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& directory,
                                          std::optional<bool> lowercase) {
  const std::string config = directory + "/tokenizer_config.json";
  if (optional_file_exists(config)) {
    // Hugging Face writes many other keys here; those we write are checked (a wrong type is an
    // error, as it is for Python), and only do_lower_case changes what we do.
    const detail::Json json = detail::parse_json(read_file(config), config);
    if (!json.is_object()) throw Error(config + ": expected a JSON object");
    detail::JsonObjectReader reader(json, config);
    bool do_lower_case = true;
    int64_t model_max_length = 1;
    std::string tokenizer_class;
    reader.read("do_lower_case", do_lower_case);
    reader.read("model_max_length", model_max_length);
    reader.read("tokenizer_class", tokenizer_class);
    if (model_max_length < 1) reader.fail("model_max_length", "a positive integer");
    if (!lowercase && reader.has("do_lower_case")) lowercase = do_lower_case;
  }
  std::unique_ptr<Tokenizer> tokenizer;
  if (optional_file_exists(directory + "/vocab.txt")) {
    tokenizer = load_tokenizer_file(directory + "/vocab.txt", false, lowercase.value_or(true));
  } else if (optional_file_exists(directory + "/spiece.model")) {
    tokenizer = load_tokenizer_file(directory + "/spiece.model", true, lowercase.value_or(true));
  } else {
    throw Error(directory + ": no vocab.txt or spiece.model in the model directory");
  }
  // A vocabulary larger than the embedding table would index past it at the first rare token.
  const std::string model_config = directory + "/config.json";
  if (optional_file_exists(model_config)) {
    const BertConfig bert = BertConfig::from_file(model_config);
    if (tokenizer->vocab_size() != bert.vocab_size) {
      throw Error(directory + ": the vocabulary has " + std::to_string(tokenizer->vocab_size()) +
                  " tokens but config.json's vocab_size is " + std::to_string(bert.vocab_size));
    }
  }
  return tokenizer;
}

void save_tokenizer(const Tokenizer& tokenizer, const std::string& directory,
                    std::optional<int64_t> model_max_length) {
  const Tokenizer::VocabularyFile vocabulary = tokenizer.vocabulary_file();
  nlohmann::ordered_json config = {
      {"do_lower_case", tokenizer.lowercase()},
      {"tokenizer_class", vocabulary.name == "spiece.model" ? "AlbertTokenizer" : "BertTokenizer"}};
  if (model_max_length) config["model_max_length"] = *model_max_length;
  make_directories(directory);
  write_file_atomic(directory + "/" + vocabulary.name, vocabulary.contents);
  write_file_atomic(directory + "/tokenizer_config.json", json_text(config, 2) + "\n");
}

}  // namespace adaptertune
