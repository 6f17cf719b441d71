// The `adaptertune` command-line tool. It uses only the library's public API.

#include <algorithm>
#include <cctype>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <c10/util/Exception.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "adaptertune/io/atomic_file.h"

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/runtime.h"
#include "adaptertune/version.h"
#include "commands.h"

namespace {

// `--options FILE` (or `--options=FILE`) takes a subcommand's options from a JSON object
// ({"epochs": 3, "lr": 1e-3, "resume": true, "progress": false, ...}; keys are option names
// without dashes, '_' or '-'). They are placed before the command line's own flags, which
// therefore override them. Booleans pass as `--flag=true|false`, so false is kept too.
struct ExpandedArguments {
  std::vector<std::string> args;
  /// The --options file, and each flag it gave with its key there.
  std::string options_file;
  std::vector<std::pair<std::string, std::string>> flags_from_file;
  /// The flags the command line gave itself.
  std::vector<std::string> own_flags;
};

ExpandedArguments expand_options_file(int argc, char** argv) {
  ExpandedArguments out;
  std::vector<std::string>& args = out.args;
  args.assign(argv + 1, argv + argc);
  for (const auto& arg : args) {
    if (arg.rfind("--", 0) == 0) out.own_flags.push_back(arg.substr(0, arg.find('=')));
  }
  auto it = std::find_if(args.begin(), args.end(), [](const std::string& arg) {
    return arg == "--options" || arg.rfind("--options=", 0) == 0;
  });
  if (it == args.end()) return out;
  std::string path;
  if (*it == "--options") {
    if (it + 1 == args.end()) throw adaptertune::Error("--options needs a JSON file");
    path = *(it + 1);
    args.erase(it, it + 2);
  } else {
    path = it->substr(std::string("--options=").size());
    args.erase(it);
  }
  if (path.empty()) throw adaptertune::Error("--options needs a JSON file");
  nlohmann::json options;
  const std::string file = adaptertune::read_file(path);
  adaptertune::check_json_nesting(file, path);
  try {
    options = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& e) {
    throw adaptertune::Error(path + ": invalid JSON: " + e.what());
  }
  if (!options.is_object()) throw adaptertune::Error(path + ": expected a JSON object of options");
  auto text = [&](const std::string& key, const nlohmann::json& value) {
    if (value.is_string()) return value.get<std::string>();
    if (value.is_number() || value.is_boolean()) return adaptertune::json_text(value);
    throw adaptertune::Error(path + ": key '" + key +
                             "' must be a string, number, boolean or a list of them");
  };
  std::vector<std::string> from_file;
  for (auto o = options.begin(); o != options.end(); ++o) {
    std::string flag = "--" + o.key();
    std::replace(flag.begin(), flag.end(), '_', '-');
    out.flags_from_file.emplace_back(flag, o.key());
    if (o->is_boolean()) {
      from_file.push_back(flag + "=" + (o->get<bool>() ? "true" : "false"));
    } else if (o->is_array()) {
      for (const auto& v : *o) {
        from_file.push_back(flag);
        from_file.push_back(text(o.key(), v));
      }
    } else {
      from_file.push_back(flag);
      from_file.push_back(text(o.key(), *o));
    }
  }
  // After the subcommand's name (the first argument), before the user's flags.
  const auto insert_at = args.empty() ? args.end() : args.begin() + 1;
  args.insert(insert_at, from_file.begin(), from_file.end());
  out.options_file = path;
  return out;
}

// A parse error about a flag that only the --options file gave names the file and its key.
std::string with_options_source(const ExpandedArguments& expanded, const std::string& message) {
  for (const auto& [flag, key] : expanded.flags_from_file) {
    if (std::find(expanded.own_flags.begin(), expanded.own_flags.end(), flag) !=
        expanded.own_flags.end()) {
      continue;
    }
    const auto at = message.find(flag);
    const size_t after = at + flag.size();
    const bool whole =
        at != std::string::npos &&
        (after == message.size() ||
         !(std::isalnum(static_cast<unsigned char>(message[after])) || message[after] == '-'));
    if (whole) return expanded.options_file + ": key '" + key + "': " + message;
  }
  return message;
}

// One line for stderr, of a length to read: CLI11 and LibTorch messages can span several lines
// (LibTorch adds a stack trace in some builds), and a message may quote a huge input.
std::string one_line(std::string message) {
  const auto end = message.find_first_of("\n");
  if (end != std::string::npos) message.erase(end);
  return adaptertune::elided(message);
}

// For a first argument that names no command ("adaptertune trian"): CLI11 says only that a
// subcommand is required, as if none had been given.
std::string unknown_command(const CLI::App& app, const std::vector<std::string>& args) {
  if (!app.get_subcommands().empty() || args.empty() || args.front().rfind("-", 0) == 0) return "";
  std::string commands;
  for (const CLI::App* sub : app.get_subcommands({})) {
    commands += (commands.empty() ? "" : ", ") + sub->get_name();
  }
  return "unknown command \"" + args.front() + "\" (commands: " + commands + ")";
}

// Edits (insertions, deletions, substitutions) that turn `a` into `b`.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// For a long flag the command does not have ("adaptertune train --modle m"): CLI11 reports a
// missing required flag before it ("--model is required"), and never the flag that was meant.
std::string unknown_option(const CLI::App& app, const std::vector<std::string>& args) {
  const std::vector<CLI::App*> commands = app.get_subcommands();
  if (commands.empty()) return "";
  const CLI::App& command = *commands.front();
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i].rfind("--", 0) != 0 || args[i].size() == 2) continue;
    const std::string flag = args[i].substr(0, args[i].find('='));
    if (command.get_option_no_throw(flag) != nullptr) continue;
    std::string message = "unknown option " + flag;
    std::string closest;
    size_t closest_distance = 3;  // a typo: two edits at most
    for (const CLI::Option* option : command.get_options()) {
      for (const std::string& name : option->get_lnames()) {
        const size_t distance = edit_distance(flag.substr(2), name);
        if (distance < closest_distance) {
          closest_distance = distance;
          closest = "--" + name;
        }
      }
    }
    if (!closest.empty()) message += " (did you mean " + closest + "?)";
    return message;
  }
  return "";
}

int usage_error(const CLI::App& app, const std::string& message) {
  std::string command;
  for (const CLI::App* sub : app.get_subcommands()) command = " " + sub->get_name();
  std::cerr << "adaptertune: error: " << one_line(message) << " (see: adaptertune" << command
            << " --help)\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any tensor exists: on glibc's malloc (a build without TCMalloc), keep the memory
  // LibTorch frees (see runtime.h); under TCMalloc this does nothing.
  adaptertune::tune_cpu_allocator();
  CLI::App app{
      "adaptertune: parameter-efficient fine-tuning of BERT encoders with bottleneck "
      "adapters",
      "adaptertune"};  // parse() is given a vector, not argv: --help's usage line needs the name
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
  adaptertune::cli::Command run_serve = adaptertune::cli::add_serve_command(app);
  adaptertune::cli::Command run_inspect = adaptertune::cli::add_inspect_command(app);
  ExpandedArguments expanded;
  try {
    expanded = expand_options_file(argc, argv);
  } catch (const adaptertune::Error& e) {
    std::cerr << "adaptertune: error: " << adaptertune::elided(e.what()) << "\n";
    return 1;
  }
  try {
    std::vector<std::string> args(expanded.args.rbegin(),
                                  expanded.args.rend());  // CLI11 takes them in reverse order
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string unknown = unknown_command(app, expanded.args);
    if (!unknown.empty()) return usage_error(app, unknown);
    const std::string unknown_flag = unknown_option(app, expanded.args);
    return usage_error(app, with_options_source(expanded, unknown_flag.empty() ? one_line(e.what())
                                                                               : unknown_flag));
  }
  // LibTorch seeds its generators from the OS; a fixed seed makes whatever a command initialises
  // (a head or pooler that a checkpoint does not hold) the same every run. train and pretrain
  // reseed with their --seed.
  adaptertune::set_seed(0);
  // Exit codes (README, "Command-line tool"): 0 success; 1 bad usage or bad input (one line on
  // stderr), including failures LibTorch reports such as running out of memory; 2 an internal
  // error; 130 interrupted (a checkpoint was saved).
  try {
    if (app.got_subcommand("params")) return run_params();
    if (app.got_subcommand("tokenize")) return run_tokenize();
    if (app.got_subcommand("pretrain")) return run_pretrain();
    if (app.got_subcommand("train")) return run_train();
    if (app.got_subcommand("eval")) return run_eval();
    if (app.got_subcommand("predict")) return run_predict();
    if (app.got_subcommand("serve")) return run_serve();
    if (app.got_subcommand("inspect")) return run_inspect();
  } catch (const adaptertune::Error& e) {
    std::cerr << "adaptertune: error: " << adaptertune::elided(e.what()) << "\n";
    return 1;
  } catch (const c10::Error& e) {
    std::cerr << "adaptertune: error: LibTorch: " << one_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "adaptertune: internal error: " << one_line(e.what()) << "\n";
    return 2;
  }
  return 0;
}
