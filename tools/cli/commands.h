#pragma once
// The subcommands of the `adaptertune` tool. Each registers its options on the app and returns the
// function that runs it; main() turns a thrown adaptertune::Error into one line and exit code 1.

#include <functional>

#include <CLI/CLI.hpp>

namespace adaptertune::cli {

using Command = std::function<int()>;

/// `adaptertune params`: the parameter report of a model with adapters.
Command add_params_command(CLI::App& app);

/// `adaptertune tokenize`: what the model sees for lines of stdin.
Command add_tokenize_command(CLI::App& app);

/// `adaptertune pretrain`: masked-LM pretraining on plain text.
Command add_pretrain_command(CLI::App& app);

/// `adaptertune train`: fine-tuning on a GLUE task.
Command add_train_command(CLI::App& app);
/// `adaptertune eval`: dev metrics of a model + adapter pack.
Command add_eval_command(CLI::App& app);
/// `adaptertune predict`: labels (and logits, submission files) for new text.
Command add_predict_command(CLI::App& app);

/// `adaptertune serve`: predictions over HTTP for many tasks on one base.
Command add_serve_command(CLI::App& app);
/// `adaptertune inspect`: what a model directory and packs are, as serve describes them.
Command add_inspect_command(CLI::App& app);

}  // namespace adaptertune::cli
