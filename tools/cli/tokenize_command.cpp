// `adaptertune tokenize`: shows what the model sees. Reads JSON lines ({"text": …, "text_pair": …})
// or plain lines on stdin and prints one JSON line per input with tokens, input_ids and
// token_type_ids (special tokens included). --input-format says which; by default a line that
// starts with "{" is JSON, so a corpus of plain text wants --input-format lines.

#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/inference/predictor.h"
#include "adaptertune/io/tokenizer_files.h"
#include "commands.h"
#include "common.h"

namespace adaptertune::cli {
namespace {

struct TokenizeOptions {
  std::string vocab;
  std::string sentencepiece;
  std::string model;
  std::optional<bool> lowercase;
  std::optional<int64_t> max_length;
  std::string input_format = "auto";  // auto, lines or jsonl
};

std::unique_ptr<Tokenizer> make_tokenizer(const TokenizeOptions& o) {
  if (!o.model.empty()) return load_tokenizer(o.model, o.lowercase);
  if (!o.vocab.empty()) return load_tokenizer_file(o.vocab, false, o.lowercase.value_or(true));
  if (!o.sentencepiece.empty()) {
    return load_tokenizer_file(o.sentencepiece, true, o.lowercase.value_or(true));
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
    const bool json = options.input_format == "jsonl" ||
                      (options.input_format == "auto" && !line.empty() && line.front() == '{');
    if (json) {
      // The request format predict reads; a "task" is allowed and does not matter here.
      TaskRequest request = parse_task_request(line, "stdin:" + std::to_string(number));
      text = std::move(request.text);
      pair = std::move(request.text_pair);
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
    std::cout << json_text(out) << "\n";
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
  add_model_option(cmd, options->model, "Model directory with vocab.txt or spiece.model")
      ->excludes(vocab)
      ->excludes(spm);
  cmd->add_flag_function(
      "--lowercase,!--no-lowercase", [options](int64_t count) { options->lowercase = count > 0; },
      "Lower-case and strip accents (default: the model directory's do_lower_case, else on)");
  cmd->add_option("--max-length", options->max_length,
                  "Truncate to this many tokens, special tokens included (longest first)")
      ->check(integer_range(1));
  cmd->add_option("--input-format", options->input_format,
                  "auto (a line starting with \"{\" is JSON, any other is text), lines (every "
                  "line is text), or jsonl (every line is {\"text\", \"text_pair\"})")
      ->check(CLI::IsMember({"auto", "lines", "jsonl"}))
      ->capture_default_str();
  return [options] { return run(*options); };
}

}  // namespace adaptertune::cli
