#include "adaptertune/io/tokenizer_files.h"

#include "adaptertune/error.h"
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
  if (!lowercase && file_exists(config)) {
    // Hugging Face writes many other keys here; only do_lower_case matters to us.
    const detail::Json json = detail::parse_json(read_file(config), config);
    detail::JsonObjectReader reader(json, config);
    if (reader.has("do_lower_case")) {
      bool value = true;
      reader.read("do_lower_case", value);
      lowercase = value;
    }
  }
  if (file_exists(directory + "/vocab.txt")) {
    return load_tokenizer_file(directory + "/vocab.txt", false, lowercase.value_or(true));
  }
  if (file_exists(directory + "/spiece.model")) {
    return load_tokenizer_file(directory + "/spiece.model", true, lowercase.value_or(true));
  }
  throw Error(directory + ": no vocab.txt or spiece.model in the model directory");
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
  write_file_atomic(directory + "/tokenizer_config.json", config.dump(2) + "\n");
}

}  // namespace adaptertune
