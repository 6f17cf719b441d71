// The `adaptertune` command-line tool. It uses only the library's public API.

#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "adaptertune/io/atomic_file.h"

#include "adaptertune/error.h"
#include "adaptertune/runtime.h"
#include "adaptertune/version.h"
#include "commands.h"

namespace {

// `--options FILE` takes a subcommand's options from a JSON object ({"epochs": 3, "lr": 1e-3,
// "resume": true, ...}; keys are option names without dashes, '_' or '-'). They are placed
// before the command line's own flags, which therefore override them.
std::vector<std::string> expand_options_file(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto it = std::find(args.begin(), args.end(), "--options");
  if (it == args.end()) return args;
  if (it + 1 == args.end()) throw adaptertune::Error("--options needs a JSON file");
  const std::string path = *(it + 1);
  args.erase(it, it + 2);
  nlohmann::json options;
  try {
    options = nlohmann::json::parse(adaptertune::read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw adaptertune::Error(path + ": invalid JSON: " + e.what());
  }
  if (!options.is_object()) throw adaptertune::Error(path + ": expected a JSON object of options");
  std::vector<std::string> from_file;
  for (auto o = options.begin(); o != options.end(); ++o) {
    std::string flag = "--" + o.key();
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (o->is_boolean()) {
      if (o->get<bool>()) from_file.push_back(flag);
    } else if (o->is_array()) {
      for (const auto& v : *o)
        from_file.push_back(flag),
            from_file.push_back(v.is_string() ? v.get<std::string>() : v.dump());
    } else {
      from_file.push_back(flag);
      from_file.push_back(o->is_string() ? o->get<std::string>() : o->dump());
    }
  }
  // After the subcommand's name (the first argument), before the user's flags.
  const auto insert_at = args.empty() ? args.end() : args.begin() + 1;
  args.insert(insert_at, from_file.begin(), from_file.end());
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "adaptertune: parameter-efficient fine-tuning of BERT encoders with bottleneck "
      "adapters"};
  app.set_version_flag("--version", std::string("adaptertune ") + adaptertune::version());
  app.require_subcommand(1);
  // An option given twice (from --options and on the command line) takes the last value.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  adaptertune::cli::Command run_params = adaptertune::cli::add_params_command(app);
  adaptertune::cli::Command run_tokenize = adaptertune::cli::add_tokenize_command(app);
  adaptertune::cli::Command run_pretrain = adaptertune::cli::add_pretrain_command(app);
  adaptertune::cli::Command run_train = adaptertune::cli::add_train_command(app);
  adaptertune::cli::Command run_eval = adaptertune::cli::add_eval_command(app);
  adaptertune::cli::Command run_predict = adaptertune::cli::add_predict_command(app);
  std::vector<std::string> args;
  try {
    args = expand_options_file(argc, argv);
  } catch (const adaptertune::Error& e) {
    std::cerr << "adaptertune: error: " << e.what() << "\n";
    return 1;
  }
  try {
    std::reverse(args.begin(), args.end());  // CLI11 takes the arguments in reverse order
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // LibTorch seeds its generators from the OS; a fixed seed makes whatever a command initialises
  // (a head or pooler that a checkpoint does not hold) the same every run. train and pretrain
  // reseed with their --seed.
  adaptertune::set_seed(0);
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
