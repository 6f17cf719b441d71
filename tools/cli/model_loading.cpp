#include "model_loading.h"

#include <torch/cuda.h>
#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/text/sentencepiece_tokenizer.h"
#include "adaptertune/text/wordpiece.h"

namespace adaptertune::cli {

std::unique_ptr<Tokenizer> tokenizer_for_file(const std::string& path, bool sentencepiece,
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

std::unique_ptr<Tokenizer> tokenizer_for_model(const std::string& directory,
                                               std::optional<bool> lowercase) {
  const std::string config = directory + "/tokenizer_config.json";
  if (!lowercase && file_exists(config)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(config));
    } catch (const nlohmann::json::exception& e) {
      throw Error(config + ": invalid JSON: " + e.what());
    }
    if (j.contains("do_lower_case") && j["do_lower_case"].is_boolean()) {
      lowercase = j["do_lower_case"].get<bool>();
    }
  }
  if (file_exists(directory + "/vocab.txt")) {
    return tokenizer_for_file(directory + "/vocab.txt", false, lowercase.value_or(true));
  }
  if (file_exists(directory + "/spiece.model")) {
    return tokenizer_for_file(directory + "/spiece.model", true, lowercase.value_or(true));
  }
  throw Error(directory + ": no vocab.txt or spiece.model in the model directory");
}

std::string resolve_device(const std::string& device) {
  if (device == "auto") return torch::cuda::is_available() ? "cuda" : "cpu";
  if (device == "cuda" && !torch::cuda::is_available()) {
    throw Error("--device cuda: CUDA is not available (this build or machine has no GPU)");
  }
  return device;
}

}  // namespace adaptertune::cli
