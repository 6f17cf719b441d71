// `adaptertune inspect`: what a model directory and adapter packs are, as `serve` would run them,
// without serving: the descriptions GET /v1/model and GET /v1/tasks give.

#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adaptertune/format.h"
#include "adaptertune/inference/predictor.h"
#include "commands.h"
#include "common.h"
#include "squad_command.h"

namespace adaptertune::cli {
namespace {

struct InspectOptions {
  std::string model;
  std::vector<std::string> adapter_packs;
  std::string device = "auto";
  std::optional<std::string> precision;
  std::optional<int64_t> max_length;
  QuestionAnsweringOverrides squad;
};

int run(const InspectOptions& o) {
  PredictorOptions options = predictor_options(o.model, o.device, o.precision, o.max_length);
  options.prepack_frozen_weights = false;  // nothing runs: no copies to lay out
  options.span_overrides = o.squad;
  const Predictor predictor(o.model, o.adapter_packs, options);
  refuse_squad_flags_without_spans(o.squad, predictor, "inspect");
  using Json = nlohmann::ordered_json;
  const Json model = Json::parse(predictor.describe());
  Json tasks = Json::array();
  for (const std::string& task : predictor.tasks()) {
    tasks.push_back(Json::parse(predictor.task_info(task).to_json()));
  }
  const Json out = {{"model", model}, {"tasks", tasks}, {"warnings", predictor.warnings()}};
  std::cout << json_text(out, 2) << std::endl;
  return 0;
}

}  // namespace

Command add_inspect_command(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand(
      "inspect",
      "Describe a model directory and adapter packs as serve would run them (JSON on stdout)");
  add_model_option(cmd, o->model, "Model directory (config.json, model.safetensors, vocab.txt)")
      ->required();
  cmd->add_option("--adapter-pack", o->adapter_packs, "Adapter pack to load (repeatable)")
      ->check(CLI::ExistingDirectory)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  add_predictor_options(cmd, o->max_length, o->device, o->precision);
  add_squad_options(cmd, o->squad, /*from_pack=*/true);
  return [o] { return run(*o); };
}

}  // namespace adaptertune::cli
