// `adaptertune tokenize`: shows what the model sees. Reads JSON lines ({"text": …, "text_pair": …})
// or plain lines on stdin and prints one JSON line per input with tokens, input_ids and
// token_type_ids (special tokens included).

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/text/sentencepiece_tokenizer.h"
#include "adaptertune/text/wordpiece.h"
#include "commands.h"

namespace adaptertune::cli {
namespace {

struct TokenizeOptions {
  std::string vocab;
  std::string sentencepiece;
  std::string model;
  std::optional<bool> lowercase;
  std::optional<int64_t> max_length;
};

// The lower-casing a model directory asks for (tokenizer_config.json's do_lower_case), if any.
std::optional<bool> model_lowercase(const std::string& directory) {
  const std::string path = directory + "/tokenizer_config.json";
  if (!file_exists(path)) return std::nullopt;
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  if (config.contains("do_lower_case") && config["do_lower_case"].is_boolean()) {
    return config["do_lower_case"].get<bool>();
  }
  return std::nullopt;
}

std::unique_ptr<Tokenizer> make_tokenizer(const TokenizeOptions& o) {
  std::string vocab = o.vocab, spm = o.sentencepiece;
  std::optional<bool> lowercase = o.lowercase;
  if (!o.model.empty()) {
    if (file_exists(o.model + "/vocab.txt")) {
      vocab = o.model + "/vocab.txt";
    } else if (file_exists(o.model + "/spiece.model")) {
      spm = o.model + "/spiece.model";
    } else {
      throw Error(o.model + ": no vocab.txt or spiece.model in the model directory");
    }
    if (!lowercase) lowercase = model_lowercase(o.model);
  }
  if (!vocab.empty()) {
    WordPieceOptions options;
    options.lowercase = lowercase.value_or(true);
    return std::make_unique<WordPieceTokenizer>(vocab, options);
  }
  if (!spm.empty()) {
    SentencePieceOptions options;
    options.lowercase = lowercase.value_or(true);
    return std::make_unique<SentencePieceTokenizer>(spm, options);
  }
  throw Error("tokenize needs --vocab, --sentencepiece or --model");
}

int run(const TokenizeOptions& options) {
  std::unique_ptr<Tokenizer> tokenizer = make_tokenizer(options);
  std::string line;
  for (int64_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string text;
    std::optional<std::string> pair;
    if (!line.empty() && line.front() == '{') {
      nlohmann::json input;
      try {
        input = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error("stdin:" + std::to_string(number) + ": invalid JSON: " + e.what());
      }
      if (!input.contains("text") || !input["text"].is_string()) {
        throw Error("stdin:" + std::to_string(number) + ": expected {\"text\": string}");
      }
      text = input["text"].get<std::string>();
      if (input.contains("text_pair") && !input["text_pair"].is_null()) {
        if (!input["text_pair"].is_string()) {
          throw Error("stdin:" + std::to_string(number) + ": \"text_pair\" must be a string");
        }
        pair = input["text_pair"].get<std::string>();
      }
    } else {
      text = line;
    }
    Encoding e;
    try {
      e = tokenizer->encode(text, pair, options.max_length);
    } catch (const Error& error) {
      throw Error("stdin:" + std::to_string(number) + ": " + error.what());
    }
    nlohmann::ordered_json out = {
        {"tokens", e.tokens}, {"input_ids", e.input_ids}, {"token_type_ids", e.token_type_ids}};
    std::cout << out.dump() << "\n";
  }
  return 0;
}

}  // namespace

Command add_tokenize_command(CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize",
      "Tokenize stdin (JSON lines {\"text\", \"text_pair\"} or plain lines) as the model sees it");
  auto* vocab =
      cmd->add_option("--vocab", options->vocab, "WordPiece vocab.txt")->check(CLI::ExistingFile);
  auto* spm = cmd->add_option("--sentencepiece", options->sentencepiece, "SentencePiece model")
                  ->check(CLI::ExistingFile)
                  ->excludes(vocab);
  cmd->add_option("--model", options->model, "Model directory with vocab.txt or spiece.model")
      ->check(CLI::ExistingDirectory)
      ->excludes(vocab)
      ->excludes(spm);
  cmd->add_flag_function(
      "--lowercase,!--no-lowercase", [options](int64_t count) { options->lowercase = count > 0; },
      "Lower-case and strip accents (default: the model directory's do_lower_case, else on)");
  cmd->add_option("--max-length", options->max_length,
                  "Truncate to this many tokens, special tokens included (longest first)")
      ->check(CLI::PositiveNumber);
  return [options] { return run(*options); };
}

}  // namespace adaptertune::cli
