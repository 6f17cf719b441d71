// The `adaptertune` command-line tool. It uses only the library's public API.

#include <iostream>

#include <CLI/CLI.hpp>

#include "adaptertune/error.h"
#include "adaptertune/version.h"
#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "adaptertune: parameter-efficient fine-tuning of BERT encoders with bottleneck "
      "adapters"};
  app.set_version_flag("--version", std::string("adaptertune ") + adaptertune::version());
  app.require_subcommand(1);
  adaptertune::cli::Command run_params = adaptertune::cli::add_params_command(app);
  adaptertune::cli::Command run_tokenize = adaptertune::cli::add_tokenize_command(app);
  adaptertune::cli::Command run_pretrain = adaptertune::cli::add_pretrain_command(app);
  adaptertune::cli::Command run_train = adaptertune::cli::add_train_command(app);
  adaptertune::cli::Command run_eval = adaptertune::cli::add_eval_command(app);
  adaptertune::cli::Command run_predict = adaptertune::cli::add_predict_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.got_subcommand("params")) return run_params();
    if (app.got_subcommand("tokenize")) return run_tokenize();
    if (app.got_subcommand("pretrain")) return run_pretrain();
    if (app.got_subcommand("train")) return run_train();
    if (app.got_subcommand("eval")) return run_eval();
    if (app.got_subcommand("predict")) return run_predict();
  } catch (const adaptertune::Error& e) {
    std::cerr << "adaptertune: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "adaptertune: internal error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
