// `adaptertune train`, `eval` and `predict`: fine-tuning on a GLUE task and using the result.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "adaptertune/adapters/adapter_fusion.h"
#include "adaptertune/device.h"
#include "adaptertune/distributed/process_group.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/inference/predictor.h"
#include "adaptertune/inference/prepare_for_inference.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/output_directory.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/layers/linear.h"  // the cover's destructor
#include "adaptertune/runtime.h"
#include "adaptertune/tasks/batcher.h"
#include "adaptertune/tasks/glue.h"
#include "adaptertune/training/scheduler.h"
#include "adaptertune/training/trainer.h"
#include "commands.h"
#include "common.h"
#include "squad_command.h"
#include "task_choice.h"

namespace adaptertune::cli {
namespace {

struct TrainCommandOptions {
  /// One GLUE task, or several (`--task SST-2,MRPC,RTE`) trained together, each on its adapter.
  std::vector<std::string> tasks;
  /// One's own data instead of GLUE's: files, columns, labels, metrics.
  TaskChoice task_choice;
  std::string data_dir = "data/glue";
  std::string model;
  /// Start from BERT's random initialisation of the model's config, not its weights.
  bool random_init = false;
  AdapterChoice adapter;
  std::optional<std::string> adapter_name;
  TrainChoice train;
  std::string device = "auto";
  std::optional<std::string> precision;
  std::string schedule = "linear";
  /// Tokens per example (default kDefaultMaxLength; SQuAD windows: kSquadMaxLength; at most the
  /// model's positions).
  std::optional<int64_t> max_length;
  int64_t train_examples = 0;
  QuestionAnsweringOverrides squad;
  /// AdapterFusion: the adapters to fuse ("a,b,c", packs' names) and the fusion's config.
  std::optional<std::string> fuse;
  std::string fusion_config = "dynamic";
  /// Stacked training: the adapters ("lang" or "a,b", packs' names, bottom first) that the new
  /// adapter or fusion trains on top of, frozen.
  std::optional<std::string> stack_on;
  std::vector<std::string> adapter_packs;
  DistributedChoice distributed;
  TrainerOptions trainer;
};

// The adapters a flag's value `a,b,c` names, each the name of one of `packs` (Error naming
// `flag` otherwise).
std::vector<std::string> pack_adapters(const std::string& flag, const std::string& value,
                                       const std::vector<std::string>& packs) {
  std::vector<std::string> names = fused_adapter_names(value);
  if (names.empty()) names.push_back(value);  // one adapter
  const std::string known = joined(packs);
  for (const auto& name : names) {
    if (name.empty()) throw Error(flag + " " + value + ": expected adapter names joined by ','");
    if (std::find(packs.begin(), packs.end(), name) == packs.end()) {
      throw Error(flag + " " + value + ": " + name + " is none of the --adapter-pack packs (" +
                  (known.empty() ? std::string("none given") : known) + ")");
    }
  }
  return names;
}

// The adapters `--fuse a,b,c` names, each one of the packs (Error otherwise).
std::vector<std::string> fused_adapters(const TrainCommandOptions& o,
                                        const std::vector<std::string>& packs) {
  std::vector<std::string> names = pack_adapters("--fuse", *o.fuse, packs);
  if (names.size() < 2) throw Error("--fuse " + *o.fuse + ": a fusion needs at least two adapters");
  for (auto name = names.begin(); name != names.end(); ++name) {
    if (std::find(names.begin(), name, *name) != name) {
      throw Error("--fuse " + *o.fuse + ": names " + *name + " twice");
    }
  }
  return names;
}

FusionConfig fusion_config_for(const std::string& choice) {
  if (choice == "dynamic" || choice == "static") return FusionConfig::preset(choice);
  return FusionConfig::from_json_string(read_file(choice), choice);
}

// What --fuse asks for (nothing without it): the packs' adapters it names and the fusion's
// config. A fusion is named by its adapters, so the flags that describe a new adapter are
// refused with it, as is an adapter both fused and stacked on.
struct FuseChoice {
  std::vector<std::string> fused;
  std::optional<FusionConfig> fusion;
};
FuseChoice fuse_choice(const TrainCommandOptions& o, const std::vector<std::string>& packs,
                       const std::vector<std::string>& stacked_on) {
  if (!o.fuse) return {};
  if (o.adapter.preset || !o.adapter.config_file.empty() || o.adapter.reduction_factor ||
      o.adapter.adapter_size || o.adapter.leave_out || o.adapter_name) {
    throw Error(
        "--fuse trains a fusion of the --adapter-pack adapters, named by them: it "
        "takes no --adapter, --adapter-config, --reduction-factor, --adapter-size, "
        "--leave-out or --adapter-name");
  }
  FuseChoice choice{fused_adapters(o, packs), fusion_config_for(o.fusion_config)};
  for (const auto& name : stacked_on) {
    if (std::find(choice.fused.begin(), choice.fused.end(), name) != choice.fused.end()) {
      throw Error("--stack-on " + *o.stack_on + ": " + name + " is fused too (--fuse " + *o.fuse +
                  "); an adapter is either fused or stacked on");
    }
  }
  return choice;
}

// --adapter-pack loads adapters that the run fuses or stacks the new adapter on.
void check_packs_are_used(const TrainCommandOptions& o, const std::string& label) {
  if (!o.adapter_packs.empty() && !o.fuse && !o.stack_on) {
    throw Error(label +
                " --adapter-pack loads adapters to fuse (--fuse) or to stack the new "
                "adapter on (--stack-on): give one of them");
  }
}

HeadConfig head_for(const TaskDescription& task) {
  return task.regression() ? HeadConfig::regression() : HeadConfig::classification(task.labels);
}

// The tasks of --task, each once: GLUE's, or one of one's own files.
std::vector<CliTask> tasks_of(const TrainCommandOptions& o) {
  const TaskChoice& choice = o.task_choice;
  if (choice.has_files()) {
    if (o.tasks.size() != 1) {
      throw Error(
          "--train-file and --dev-file are the data of one task: give --task one name "
          "(several tasks in one run are GLUE's)");
    }
    if (!choice.train_file || !choice.dev_file) {
      throw Error(std::string("your own task needs --train-file and --dev-file (the best model "
                              "is chosen on dev): ") +
                  (choice.train_file ? "--dev-file" : "--train-file") + " is missing");
    }
  }
  std::vector<CliTask> tasks;
  for (const auto& name : o.tasks) {
    if (!choice.has_files() && !find_glue_task(name)) {
      throw_unknown_task(name, "for your own data set give --train-file and --dev-file");
    }
    CliTask task = resolve_task(name, choice);
    for (const auto& earlier : tasks) {
      if (earlier.info.name == task.info.name) {
        throw Error("--task names " + task.info.name + " twice");
      }
    }
    tasks.push_back(std::move(task));
  }
  if (tasks.empty()) throw Error("--task: no task given");
  return tasks;
}

// Several tasks in one run: each its adapter (named like the task) and head on the one base.
void check_multi_task_options(const TrainCommandOptions& o, bool adapter) {
  const std::string label = "train --task with several tasks (multi-task training)";
  if (o.fuse) throw Error(label + " takes no --fuse: train a fusion for one task");
  if (o.adapter_name) {
    throw Error(label + " takes no --adapter-name: each task's adapter is named like the task");
  }
  if (!adapter) {
    throw Error(label + " trains an adapter per task: --train adapters or adapters-head");
  }
}

// --stack-on trains a new adapter on top of the packs': only where an adapter trains.
void check_stack_on_trains_an_adapter(const TrainCommandOptions& o, TrainMode mode) {
  if (o.stack_on && mode != TrainMode::kAdapters && mode != TrainMode::kAdaptersAndHead) {
    throw Error(
        "--stack-on trains a new adapter on top of the packs' (--train adapters or "
        "adapters-head), not --train " +
        o.train.mode);
  }
}

// Only a fully trained model is saved whole; an adapter pack or a head would be loaded later
// onto the directory's real weights, which it was not trained with.
void check_random_init(const TrainCommandOptions& o, TrainMode mode) {
  if (o.random_init && mode != TrainMode::kFull) {
    throw Error("--random-init needs --train full: with --train " + o.train.mode +
                " the saved files would be used on " + o.model + "'s pretrained weights");
  }
}

// Refuses, naming them, the flags of classification files and their scoring, which SQuAD's JSON
// files and its exact match and F1 have no use for (`command`: "eval --task squad", ...).
void refuse_classification_flags(const TaskChoice& files, const std::string& command) {
  std::vector<std::string> given = files.file_flags_given();
  if (!files.metrics.empty()) given.push_back("--metrics");
  if (files.main_metric) given.push_back("--main-metric");
  if (!given.empty()) {
    throw Error(command + ": " + joined(given) + (given.size() == 1 ? " does" : " do") +
                " not apply: SQuAD's files are JSON, scored by exact match and F1");
  }
}

// `train --task squad`: the flags that describe another kind of task are refused by name.
int run_train_squad_command(TrainCommandOptions& o) {
  const std::string label = "train --task squad";
  if (o.tasks.size() > 1) throw Error(label + " trains alone: give --task squad only");
  const TaskChoice& files = o.task_choice;
  if (!files.train_file || !files.dev_file) {
    throw Error(label + " needs --train-file and --dev-file (SQuAD JSON files)");
  }
  refuse_classification_flags(files, label);
  check_packs_are_used(o, label);
  std::vector<std::string> packs;  // the packs' adapter names, in --adapter-pack order
  for (const auto& pack : o.adapter_packs) packs.push_back(read_adapter_pack_info(pack).name);
  const std::vector<std::string> stacked_on =
      o.stack_on ? pack_adapters("--stack-on", *o.stack_on, packs) : std::vector<std::string>();
  FuseChoice fuse = fuse_choice(o, packs, stacked_on);
  const FreezePolicy requested = requested_policy(o.train, o.model);
  check_stack_on_trains_an_adapter(o, requested.mode);
  check_random_init(o, requested.mode);
  if (o.trainer.last_layer_first_position) {
    throw Error(label +
                ": --last-layer-first-position does not apply: spans are read from every "
                "position");
  }
  o.trainer.device = parse_device(o.device);
  o.trainer.precision = parse_precision(o.precision.value_or("fp32"));
  o.trainer.schedule = parse_schedule(o.schedule);
  SquadTrainRequest request;
  request.max_length = o.max_length;
  request.model = o.model;
  request.adapter = o.adapter;
  request.adapter_name = o.adapter_name;
  request.adapter_packs = o.adapter_packs;
  request.stacked_on = stacked_on;
  request.fused = std::move(fuse.fused);
  request.fusion = std::move(fuse.fusion);
  request.random_init = o.random_init;
  request.train_examples = o.train_examples;
  request.train = o.train;
  request.requested = requested;
  request.trainer = o.trainer;
  request.trainer.base_random_init = o.random_init;
  request.train_file = *files.train_file;
  request.dev_file = *files.dev_file;
  request.squad = o.squad;
  request.distributed = o.distributed;
  request.device_flag = o.device;
  return run_train_squad(std::move(request));
}

int run_train(TrainCommandOptions o) {
  if (std::any_of(o.tasks.begin(), o.tasks.end(), is_squad_task)) {
    return run_train_squad_command(o);
  }
  const std::vector<CliTask> tasks = tasks_of(o);
  const TaskDescription& task = tasks.front().info;
  const bool several = tasks.size() > 1;
  refuse_squad_flags(o.squad, "train --task " + task.name);
  o.trainer.device = parse_device(o.device);
  o.trainer.precision = parse_precision(o.precision.value_or("fp32"));
  o.trainer.schedule = parse_schedule(o.schedule);
  const FreezePolicy requested = requested_policy(o.train, o.model);
  const TrainMode mode = requested.mode;
  check_random_init(o, mode);
  std::vector<std::string> packs;  // the packs' adapter names, in --adapter-pack order
  for (const auto& pack : o.adapter_packs) packs.push_back(read_adapter_pack_info(pack).name);
  const std::vector<std::string> stacked_on =
      o.stack_on ? pack_adapters("--stack-on", *o.stack_on, packs) : std::vector<std::string>();
  const FuseChoice fuse = fuse_choice(o, packs, stacked_on);
  const std::vector<std::string>& fused = fuse.fused;
  const std::optional<FusionConfig>& fusion = fuse.fusion;
  check_stack_on_trains_an_adapter(o, mode);
  check_packs_are_used(o, "train");
  std::optional<AdapterConfig> adapter = o.fuse ? std::nullopt : resolve_adapter(o.adapter, mode);
  if (several) check_multi_task_options(o, adapter.has_value());
  const std::string adapter_label =
      o.fuse ? fusion_name(fused) : o.adapter_name.value_or(adapter_name_for(task));
  // Options are checked before anything loads or is written, so that a mistake costs no time and
  // leaves nothing behind.
  o.trainer.inputs = {o.model, o.data_dir, o.adapter.config_file};
  o.trainer.base_model_dir = o.model;
  o.trainer.base_random_init = o.random_init;
  for (const auto& file : {o.task_choice.train_file, o.task_choice.dev_file}) {
    if (file) o.trainer.inputs.push_back(*file);
  }
  o.trainer.inputs.insert(o.trainer.inputs.end(), o.adapter_packs.begin(), o.adapter_packs.end());
  o.trainer.validate();
  const int64_t max_length = max_length_for(o.model, o.max_length, kDefaultMaxLength);
  o.trainer.max_length = max_length;
  if (o.trainer.sampling_temperature != 1.0 && !several) {
    throw Error(
        "--sampling-temperature interleaves the tasks of a multi-task run: give --task "
        "several tasks (e.g. SST-2,MRPC,RTE)");
  }
  check_adapter_for_policy(
      requested, o.train,
      adapter || fusion ? std::optional<std::string>(adapter_label) : std::nullopt, o.adapter_name);
  check_recompute_for_policy(requested, o.train, o.trainer.gradient_checkpointing,
                             o.trainer.recompute_attention_probabilities);
  // Data-parallel: join the group once the options every process shares have been checked
  // (they fail alike everywhere), before the run directory is (only rank 0 looks at it).
  o.trainer.process_group = join_group(o.distributed, o.trainer.device, o.device);
  const bool main_process = speaks_for_group();
  Trainer::check_options(o.trainer);
  // The data is read before the model loads, so that a malformed row costs no time.
  std::vector<std::pair<TextDataset, TextDataset>> data;
  for (const CliTask& t : tasks) {
    const TaskChoice& files = o.task_choice;
    data.emplace_back(
        first_examples(read_task_split(t, files, o.data_dir, "train", files.train_file),
                       o.train_examples),
        read_task_split(t, files, o.data_dir, "dev", files.dev_file));
  }
  // Before the model: the head, the adapters and a missing pooler are initialised from it.
  set_seed(o.trainer.seed);
  auto tokenizer = load_tokenizer(o.model);
  LoadReport report;
  BertForSequenceClassification model =
      o.random_init ? init_bert_for_sequence_classification(o.model, head_for(task))
                    : load_bert_for_sequence_classification(o.model, head_for(task), &report);
  if (main_process) report_base(o.model, o.random_init, report);
  // The packs' adapters (fused or stacked on) are frozen tasks of their own; only the new
  // adapters or fusion (with their LayerNorm copies and heads, as --train says) train.
  for (const auto& pack : o.adapter_packs) {
    AdapterPackLoad load = load_adapter_pack(model, pack, std::nullopt, /*load_head=*/false);
    for (const auto& w : load.warnings) warn(w);
  }
  std::optional<std::string> adapter_name;
  if (several) {
    // Each task its adapter and its own head, in --task order (so that a seed repeats them).
    for (const CliTask& t : tasks) {
      model->bert->add_adapter(adapter_name_for(t.info), *adapter);
      model->add_task_head(adapter_name_for(t.info), head_for(t.info));
    }
  } else if (adapter) {
    adapter_name = adapter_label;
    model->bert->add_adapter(*adapter_name, *adapter);
  } else if (fusion) {
    adapter_name = model->bert->add_fusion(fused, *fusion);
  }
  const FreezePolicy policy = resolve_policy(requested, o.train, *model->bert);

  std::vector<TrainingTask> training;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const CliTask& t = tasks[i];
    EncodedDataset train = encode_examples(data[i].first, *tokenizer, max_length);
    EncodedDataset dev = encode_examples(data[i].second, *tokenizer, max_length);
    const std::optional<std::string> name =
        several ? std::optional<std::string>(adapter_name_for(t.info)) : adapter_name;
    training.push_back({t.info, std::move(train), std::move(dev), name, stacked_on});
    if (main_process) {
      const std::optional<Stack> stack = training.back().active_stack();
      std::fprintf(stderr, "train: %s, %zu train / %zu dev examples, adapter %s\n",
                   t.info.name.c_str(), training.back().train.encodings.size(),
                   training.back().dev.encodings.size(),
                   stack ? stack->describe().c_str() : "none");
    }
  }
  if (main_process) {
    const std::string processes =
        o.trainer.process_group ? ", " + std::to_string(o.trainer.process_group->world_size()) +
                                      " processes (" + o.trainer.process_group->backend() + ")"
                                : std::string();
    std::fprintf(stderr, "train: training %s%s on %s (%s)%s\n", policy.name().c_str(),
                 policy.train_pooler ? " + pooler" : "", o.trainer.device.str().c_str(),
                 precision_name(o.trainer.precision).c_str(), processes.c_str());
  }
  TrainResult result;
  {
    StopOnInterrupt ctrl_c;
    Trainer trainer(model, std::move(training), policy, o.trainer, *tokenizer);
    result = trainer.train();
  }
  auto best_model = [](const std::optional<std::string>& dir) {
    return dir ? nlohmann::ordered_json(*dir) : nullptr;
  };
  nlohmann::ordered_json out;
  if (several) {
    std::string names;
    nlohmann::ordered_json per_task = nlohmann::ordered_json::array();
    for (const TaskTrainResult& r : result.tasks) {
      names += (names.empty() ? "" : ",") + r.task;
      per_task.push_back({{"task", r.task},
                          {"adapter", *r.adapter},
                          {"best_step", r.best_step},
                          {"dev", r.best_metrics},
                          {"batches", r.batches},
                          {"best_model", best_model(r.best_model)}});
    }
    out = {{"task", names}, {"tasks", per_task}};
  } else {
    out = {{"task", task.name},
           {"best_step", result.best_step},
           {"dev", result.best_metrics},
           {"best_model", best_model(result.best_model)}};
  }
  out["seconds"] = result.seconds;
  out["interrupted"] = result.interrupted;
  if (main_process) std::cout << json_text(out) << std::endl;
  return result.interrupted ? 130 : 0;
}

struct UseOptions {
  std::optional<std::string> task;
  /// One's own data instead of GLUE's (--dev-file for eval, --test-file for predict).
  TaskChoice task_choice;
  QuestionAnsweringOverrides squad;
  std::string data_dir = "data/glue";
  std::string model;
  std::vector<std::string> adapter_packs;
  std::optional<std::string> adapter;
  std::string split = "dev";
  /// Whether --split was given (predict's default names the test split; given, it must apply).
  bool split_given = false;
  std::string input;
  std::string input_format = "auto";
  std::optional<std::string> format;
  std::string out;
  std::optional<int64_t> max_length;
  int64_t batch_size = 128;
  std::string device = "auto";
  std::optional<std::string> precision;
  /// eval and predict on files in a group of processes: each runs its share of the batches.
  DistributedChoice distributed;
};

// What does not run data-parallel: refused in a group rather than run in full by every process.
void refuse_group_for(const UseOptions& o, const std::string& what) {
  if (o.distributed.requested()) {
    throw Error(what +
                " does not run in a group of processes (WORLD_SIZE, SLURM_NTASKS or "
                "--distributed): run it in one process; eval and predict share out GLUE files, "
                "--dev-file/--test-file data sets, SQuAD files and files of JSON lines");
  }
}

// --adapter as a Stack: one adapter (a pack's name) or `Stack(lang, task)` of packs' names.
std::optional<Stack> adapter_stack(const UseOptions& o) {
  if (!o.adapter) return std::nullopt;
  const AdapterSetup setup = parse_adapter_setup(*o.adapter);
  if (setup.kind != AdapterSetup::Kind::kStack) {
    throw Error("--adapter " + *o.adapter +
                ": eval and predict run one adapter or one Stack (Parallel and BatchSplit give "
                "one output per branch: use the library's TaskRouting)");
  }
  return setup.children.front();
}

// Which of the packs eval (or predict on GLUE/plain input) runs: the only one, the one --adapter
// names (the top of its Stack), the only fusion among them, the only one stacked on others and
// below none, else the one `train --task` would have named like the task.
std::optional<size_t> chosen_pack(const UseOptions& o, const TaskDescription& task,
                                  const std::vector<AdapterPackInfo>& infos) {
  if (infos.empty()) {
    if (o.adapter) throw Error("--adapter " + *o.adapter + " needs --adapter-pack");
    return std::nullopt;
  }
  const std::optional<Stack> stack = adapter_stack(o);
  if (stack) {
    for (const auto& adapter : stack->adapters) {
      if (std::none_of(infos.begin(), infos.end(),
                       [&](const AdapterPackInfo& info) { return info.name == adapter; })) {
        std::string names;
        for (const auto& info : infos) names += (names.empty() ? "" : ", ") + info.name;
        throw Error("--adapter " + *o.adapter + ": " + adapter +
                    " is none of the packs (packs: " + names + ")");
      }
    }
  }
  if (infos.size() == 1 && !o.adapter) return 0;
  if (!o.adapter) {
    // Packs and one fusion of them, or one adapter stacked on some of them and below none: the
    // one the others were loaded for.
    auto only = [&](const std::function<bool(const AdapterPackInfo&)>& wanted) {
      std::optional<size_t> found;
      for (size_t i = 0; i < infos.size(); ++i) {
        if (wanted(infos[i])) found = found ? infos.size() : i;
      }
      return found && *found < infos.size() ? found : std::nullopt;
    };
    auto below_another = [&](const std::string& name) {
      return std::any_of(infos.begin(), infos.end(), [&](const AdapterPackInfo& other) {
        return std::count(other.stacked_on.begin(), other.stacked_on.end(), name) > 0;
      });
    };
    if (auto fusion = only([](const AdapterPackInfo& info) { return info.fusion.has_value(); })) {
      return fusion;
    }
    if (auto top = only([&](const AdapterPackInfo& info) {
          return !info.stacked_on.empty() && !below_another(info.name);
        })) {
      return top;
    }
  }
  const std::string wanted = stack ? stack->adapters.back() : adapter_name_for(task);
  std::string names;
  for (size_t i = 0; i < infos.size(); ++i) {
    if (infos[i].name == wanted) return i;
    names += (i ? ", " : "") + infos[i].name;
  }
  throw Error((o.adapter ? "--adapter " + wanted + " is none of the packs"
                         : "several adapter packs and none is named " + wanted +
                               ": choose one with --adapter") +
              " (packs: " + names + ")");
}

// What eval and predict run with: the command line's value, else what the chosen pack was
// trained with, else the defaults (128 tokens, fp32).
struct UseSettings {
  int64_t max_length;
  Precision precision;
  c10::Device device;
  std::optional<size_t> pack;
  /// The packs' descriptions, in --adapter-pack order.
  std::vector<AdapterPackInfo> infos;
  /// The Stack that runs: --adapter's, else the chosen pack on what it was trained stacked on
  /// (std::nullopt: the chosen pack alone, or no pack).
  std::optional<Stack> stack;
  /// What to warn() about once the command knows whether it speaks for a group.
  std::vector<std::string> warnings;
};

// The model for eval/predict: a model directory with every pack loaded onto it as a task, the
// chosen one (use.pack) active.
BertForSequenceClassification load_for_use(const UseOptions& o, const TaskDescription& task,
                                           const UseSettings& use) {
  const std::optional<size_t> chosen = use.pack;
  LoadReport report;
  BertForSequenceClassification model =
      load_bert_for_sequence_classification(o.model, head_for(task), &report);
  std::vector<std::string> names(o.adapter_packs.size());
  for (size_t i : pack_load_order(use.infos)) {
    const std::string& pack = o.adapter_packs[i];
    AdapterPackLoad load = load_adapter_pack(model, pack);
    for (const auto& w : load.warnings) warn(w);
    if (!load.head_loaded) warn("adapter pack " + pack + " has no head; the head is untrained");
    names[i] = load.adapter_name;
  }
  if (use.stack && use.stack->adapters.size() > 1) {
    model->bert->set_active_stack(*use.stack);
  } else if (chosen) {
    model->bert->set_active_adapter(names.at(*chosen));
  } else {
    model->bert->set_active_adapter(std::nullopt);
    if (report.ignored_span_head()) {
      warn(o.model + " is a span model (question answering): its classifier head is untrained; " +
           "run it with --task squad, or ask it questions as JSON lines");
    } else if (report.missing_any(ParameterGroup::kHead)) {
      warn(o.model + " has no classifier weights; predictions come from an untrained head");
    }
  }
  return model;
}

// What eval and predict run on: the group of processes when one is asked for, the tokenizer and
// the model with its packs. The group is joined once the settings are checked (they fail alike
// everywhere), before the model loads and moves to its device.
struct UseModel {
  std::shared_ptr<ProcessGroup> group;  // null: alone
  std::unique_ptr<Tokenizer> tokenizer;
  BertForSequenceClassification model{nullptr};
  // set_up_for_inference()'s cover of the prepacked bf16 weights, for the command's life.
  std::unique_ptr<FrozenLinearWeightsPrepacked> prepacked;
};

UseModel open_use_model(const UseOptions& o, const TaskDescription& task, UseSettings& use) {
  UseModel out;
  out.group = join_group(o.distributed, use.device, o.device);
  for (const auto& w : use.warnings) warn(w);
  out.tokenizer = load_tokenizer(o.model);
  out.model = load_for_use(o, task, use);
  // As a Predictor runs it: no cast of every weight on every batch, the same outputs.
  out.prepacked = set_up_for_inference(*out.model, use.device, use.precision);
  return out;
}

// A pack's head answers its own task: one trained on another label set would give wrong labels
// without a word.
void check_pack_fits_task(const AdapterPackInfo& info, const std::string& pack,
                          const TaskDescription& task) {
  if (!info.head) return;
  const HeadConfig& head = *info.head;
  const HeadConfig wanted = head_for(task);
  auto describe = [](const HeadConfig& h) {
    if (h.problem_type == ProblemType::kRegression) return std::string("a regression head");
    std::string text = std::to_string(h.num_labels) + " labels";
    if (!h.id2label.empty()) {
      text += " (";
      for (size_t i = 0; i < h.id2label.size(); ++i) text += (i ? ", " : "") + h.id2label[i];
      text += ")";
    }
    return text;
  };
  const bool fits = head.problem_type == wanted.problem_type &&
                    head.num_labels == wanted.num_labels &&
                    (head.id2label.empty() || head.id2label == wanted.id2label);
  if (!fits) {
    throw Error(pack + ": the pack's head has " + describe(head) + " but " + task.name + " needs " +
                describe(wanted) + " (a pack of another task?)");
  }
}

// The packs' descriptions, checked: fusions with their adapters, and no span pack unless
// `span_packs` (JSON lines of requests can ask one a question about a context; a data set's
// examples cannot: only --task squad reads questions and contexts).
std::vector<AdapterPackInfo> pack_infos(const UseOptions& o, bool span_packs = false) {
  std::vector<AdapterPackInfo> infos;
  for (const auto& pack : o.adapter_packs) {
    if (infos.emplace_back(read_adapter_pack_info(pack)).span_head && !span_packs) {
      throw Error(pack +
                  ": the pack's head is a span head (question answering): run it with "
                  "--task squad");
    }
  }
  check_fused_adapters(infos, o.adapter_packs);
  return infos;
}

// The task eval and predict run. One's own task without --labels or --regression takes its
// labels from the head it runs: the chosen pack's, else the model's own (a fully fine-tuned
// model directory, whose config.json names them).
CliTask task_for_use(const UseOptions& o, const std::vector<AdapterPackInfo>& infos) {
  const std::string name = o.task.value_or("");
  const TaskChoice& choice = o.task_choice;
  std::optional<HeadConfig> head;
  if ((choice.has_files() || !find_glue_task(name)) && choice.labels.empty() &&
      !choice.regression) {
    TaskDescription named;
    named.name = name;
    const std::optional<size_t> pack = chosen_pack(o, named, infos);
    if (pack) {
      head = infos[*pack].head;
    } else {
      const std::string config = o.model + "/config.json";
      const std::string text = read_file(config);
      if (nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false).contains("id2label")) {
        head = HeadConfig::from_model_config(text, config);
      }
    }
  }
  return resolve_task(name, choice, head);
}

// Reads the packs' descriptions and the options, before any model loads.
UseSettings settings_for(const UseOptions& o, const TaskDescription& task,
                         std::vector<AdapterPackInfo> infos) {
  const c10::Device device = parse_device(o.device);
  const std::optional<size_t> pack = chosen_pack(o, task, infos);
  const AdapterPackInfo* info = pack ? &infos[*pack] : nullptr;
  if (info) check_pack_fits_task(*info, o.adapter_packs[*pack], task);
  // The flags, else what the chosen pack records, else what the model directory records (a full
  // or head-only run's), else the defaults.
  const RecordedRun recorded =
      recorded_run(o.model, info, pack ? o.adapter_packs[*pack] : std::string(), o.max_length);
  const BertConfig config = BertConfig::from_file(o.model + "/config.json");
  const int64_t max_length = o.max_length.value_or(
      recorded.record.max_length > 0 ? recorded.record.max_length
                                     : config.default_sequence_length(kDefaultMaxLength));
  config.check_sequence_length(max_length, recorded.length_source);
  std::optional<Stack> stack = adapter_stack(o);
  std::vector<std::string> warnings;
  if (info && !info->stacked_on.empty()) {
    // A pack trained on a Stack runs in it unless --adapter says otherwise.
    std::vector<std::string> trained = info->trained_stack();
    const std::string described = Stack(trained).describe();
    if (stack && stack->adapters != trained) {
      warnings.push_back(o.adapter_packs[*pack] + " was trained as " + described + "; running " +
                         stack->describe() + " as --adapter asks");
    }
    if (!stack) {
      check_packs_below(*info, o.adapter_packs[*pack], infos,
                        "or --adapter " + info->name + " to run it alone");
      stack = Stack(std::move(trained));
    }
  }
  const Precision precision =
      use_precision(o.precision, recorded.record.precision, device, warnings);
  return {max_length,       precision,          device, pack, std::move(infos),
          std::move(stack), std::move(warnings)};
}

// eval and predict with --task squad: the file, the packs and the settings that apply.
SquadUseRequest squad_request(const UseOptions& o, const std::optional<std::string>& file,
                              const std::string& flag) {
  if (!file) throw Error("--task squad reads a SQuAD JSON file: give " + flag);
  refuse_classification_flags(o.task_choice, "--task squad");
  if (o.adapter) {
    throw Error(
        "--task squad runs its span pack in the Stack it was trained on; --adapter does "
        "not apply");
  }
  SquadUseRequest request;
  request.model = o.model;
  request.adapter_packs = o.adapter_packs;
  request.file = *file;
  request.max_length = o.max_length;
  request.batch_size = o.batch_size;
  request.device = o.device;
  request.precision = o.precision;
  request.out = o.out;
  request.squad = o.squad;
  request.distributed = o.distributed;
  return request;
}

int run_eval(const UseOptions& o) {
  if (o.task && is_squad_task(*o.task)) {
    return run_eval_squad(squad_request(o, o.task_choice.dev_file, "--dev-file"));
  }
  std::vector<AdapterPackInfo> infos = pack_infos(o);
  const CliTask cli_task = task_for_use(o, infos);
  const TaskDescription& task = cli_task.info;
  refuse_squad_flags(o.squad, "eval --task " + task.name);
  UseSettings use = settings_for(o, task, std::move(infos));
  UseModel m = open_use_model(o, task, use);
  const std::optional<std::string>& file = o.task_choice.dev_file;
  EncodedDataset data =
      encode_examples(read_task_split(cli_task, o.task_choice, o.data_dir, o.split, file),
                      *m.tokenizer, use.max_length);
  if (data.targets.empty()) {
    throw Error((file ? *file : task.name + " " + o.split) + " has no labels to evaluate against" +
                (file ? " (no column \"" + o.task_choice.label_column + "\")" : ""));
  }
  EvalResult r = evaluate(m.model, task, data, o.batch_size, use.device, use.precision,
                          m.tokenizer->pad_id(), m.group.get());
  if (!speaks_for_group()) return 0;  // rank 0 prints
  nlohmann::ordered_json out = {{"task", task.name}};
  out.update(active_task_json(*m.model->bert));
  out.update({{"split", file ? *file : o.split},
              {"examples", data.encodings.size()},
              {"max_length", use.max_length},
              {"precision", precision_name(use.precision)},
              {"loss", r.loss},
              {"metrics", r.metrics}});
  std::cout << json_text(out) << std::endl;
  return 0;
}

// All of stdin, for the readers that take text in memory.
std::string read_stdin() {
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

// JSON lines of requests, from a file or stdin.
TaskRequests read_requests(const std::string& path) {
  return path.empty() ? parse_task_requests(read_stdin(), "stdin")
                      : parse_task_requests(read_file(path), path);
}

// What predict reads, which --out must not replace.
std::vector<std::string> inputs_of(const UseOptions& o) {
  std::vector<std::string> inputs{o.model, o.input, o.task_choice.test_file.value_or("")};
  inputs.insert(inputs.end(), o.adapter_packs.begin(), o.adapter_packs.end());
  return inputs;
}

// Before the work: predictions are written to --out only at the end.
void check_output_file(const std::string& out, const std::vector<std::string>& inputs) {
  check_not_an_input(out, inputs, "--out");
  check_file_can_be_written(out, "--out");
}

void write_output(const std::string& out, const std::string& text) {
  if (out.empty()) {
    std::cout << text << std::flush;
  } else {
    write_file_atomic(out, text);
  }
}

// An option about GLUE's folder (--data-dir, eval's --split): refused beside the files of your own
// task, for which it would not be read (add_task_choice_options() adds those first).
void of_glue_folder(CLI::App* cmd, CLI::Option* option) {
  for (const char* file : {"--train-file", "--dev-file", "--test-file"}) {
    if (CLI::Option* given = cmd->get_option_no_throw(file)) option->excludes(given);
  }
}

void add_data_dir_option(CLI::App* cmd, std::string& data_dir, const std::string& help) {
  of_glue_folder(cmd, cmd->add_option("--data-dir", data_dir, help)
                          ->check(CLI::ExistingDirectory)
                          ->capture_default_str());
}

// The split predict names a GLUE submission file after unless --split says another.
constexpr const char* kPredictSplit = "test";

// Error when --split is given where no GLUE submission file is written (`answered`: how the
// answers are written instead), which it would otherwise leave unread.
void refuse_split(const UseOptions& o, const std::string& answered) {
  if (o.split_given) {
    throw Error("--split names the GLUE split of a --format glue file; " + answered);
  }
}

// predict on JSON lines: each line names its task (a pack's adapter name) or none.
int run_predict_requests(const UseOptions& o) {
  if (o.task) {
    throw Error("--task does not apply to JSON lines input: each line names its task");
  }
  if (o.format && *o.format != "json") {
    throw Error("--format " + *o.format +
                " does not apply to JSON lines input, which is "
                "answered with JSON lines");
  }
  if (o.adapter)
    throw Error("--adapter does not apply to JSON lines input: each line names its task");
  if (o.task_choice.test_file) {
    throw Error(
        "--test-file reads your own data set; JSON lines of requests (--input) name "
        "their tasks: give one of them");
  }
  const std::string own = o.task_choice.own_file_flags();
  if (!own.empty()) {
    throw Error(own + "; JSON lines of requests carry their texts as \"text\" and \"text_pair\"");
  }
  refuse_split(o, "JSON lines input is answered with JSON lines");
  if (!o.out.empty()) check_output_file(o.out, inputs_of(o));
  PredictorOptions options = predictor_options(o.model, o.device, o.precision, o.max_length);
  options.batch_size = o.batch_size;
  options.span_overrides = o.squad;
  // The packs are checked before stdin is read (the Predictor reads them again, before the base).
  pack_infos(o, /*span_packs=*/true);
  if (o.input.empty()) refuse_group_for(o, "predict on JSON lines from stdin");
  const TaskRequests input = read_requests(o.input);
  if (input.requests.empty()) throw Error("predict: no input requests");
  // In a group, each process predicts its share of the batches and rank 0 writes them all.
  const std::shared_ptr<ProcessGroup> group = join_group(o.distributed, options.device, o.device);
  const Predictor predictor(o.model, o.adapter_packs, options);
  refuse_squad_flags_without_spans(o.squad, predictor, "predict on JSON lines");
  const std::vector<std::string> tasks = predictor.tasks();
  for (size_t i = 0; i < input.requests.size(); ++i) {
    const std::optional<std::string>& task = input.requests[i].task;
    if (task && std::find(tasks.begin(), tasks.end(), *task) == tasks.end()) {
      throw Error(input.where[i] + ": no task \"" + *task + "\" among the adapter packs (" +
                  (tasks.empty() ? std::string("none given") : joined(tasks)) + ")");
    }
    try {
      predictor.check_request(input.requests[i]);  // e.g. a question without its context
    } catch (const Error& e) {
      throw Error(input.where[i] + ": " + e.what());
    }
  }
  for (const auto& w : predictor.warnings()) warn(w);
  if (speaks_for_group()) {
    int64_t task_bytes = 0;
    for (const auto& name : tasks) task_bytes += predictor.task_bytes(name);
    std::fprintf(stderr, "predict: base %s bytes; %zu tasks add %s bytes\n",
                 with_commas(predictor.base_bytes()).c_str(), tasks.size(),
                 with_commas(task_bytes).c_str());
  }
  const std::vector<Prediction> predictions = predictor.predict(input.requests, group.get());
  if (!speaks_for_group()) return 0;  // rank 0 writes
  std::string text;
  for (const Prediction& p : predictions) text += p.to_json() + "\n";
  write_output(o.out, text);
  return 0;
}

bool jsonl_input(const UseOptions& o) {
  if (o.input_format == "jsonl") return true;
  if (o.input_format != "auto") return false;
  const std::string suffix = ".jsonl";
  return o.input.size() >= suffix.size() &&
         o.input.compare(o.input.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int run_predict(const UseOptions& o) {
  if (o.task && is_squad_task(*o.task)) {
    if (o.format && *o.format != "json") {
      throw Error("--task squad answers with a JSON object (question id: answer); --format " +
                  *o.format + " does not apply");
    }
    refuse_split(o, "--task squad answers with a JSON object");
    if (!o.out.empty()) check_output_file(o.out, inputs_of(o));
    return run_predict_squad(squad_request(o, o.task_choice.test_file, "--test-file"));
  }
  if (jsonl_input(o)) return run_predict_requests(o);
  if (!o.task) throw Error("predict needs --task (or JSON lines input that names each task)");
  const std::optional<std::string>& test_file = o.task_choice.test_file;
  if (test_file && (!o.input.empty() || o.input_format != "auto")) {
    throw Error(
        "--test-file reads your own data set; --input and --input-format are for GLUE "
        "files, stdin and JSON lines of requests");
  }
  std::vector<AdapterPackInfo> infos = pack_infos(o);
  const CliTask cli_task = task_for_use(o, infos);
  const TaskDescription& task = cli_task.info;
  refuse_squad_flags(o.squad, "predict --task " + task.name);
  const std::string format = o.format.value_or("labels");
  if (format != "glue") refuse_split(o, "--format " + format + " names no split");
  if (format == "glue" && !cli_task.glue) {
    throw Error("--format glue writes a GLUE leaderboard file; " + task.name +
                " is not a GLUE task (use labels, json or logits)");
  }
  if (format == "glue" && o.out.empty()) {
    throw Error("--format glue writes a submission file: it needs --out DIR");
  }
  if (format == "glue") {
    // The submission's directory is made when the predictions are written.
    check_directory_can_be_made(o.out, "--out directory of the submission");
    check_not_an_input(o.out + "/" + glue_submission_file_name(*cli_task.glue, o.split),
                       inputs_of(o), "--out");
  } else if (!o.out.empty()) {
    check_output_file(o.out, inputs_of(o));
  }
  // What the flags and packs decide fails before the processes meet and the model loads.
  if (o.input_format == "glue" && o.input.empty()) throw Error("--input-format glue needs --input");
  if (o.input_format == "lines" && !o.input.empty()) {
    throw Error("--input-format lines reads stdin; give --input only for a GLUE TSV or JSON lines");
  }
  const bool from_stdin = !test_file && (o.input.empty() || o.input_format == "lines");
  if (from_stdin) refuse_group_for(o, "predict on stdin");
  if (!cli_task.glue && !from_stdin && !test_file) {
    throw Error(task.name +
                " is your own task: give its file with --test-file (--input reads GLUE "
                "files and JSON lines of requests)");
  }
  UseSettings use = settings_for(o, task, std::move(infos));
  UseModel m = open_use_model(o, task, use);
  TextFileOptions unlabelled = o.task_choice.file_options();
  unlabelled.label_column.clear();  // predict ignores labels: a test file may have them or not
  TextDataset data = from_stdin  ? parse_text_lines(task, read_stdin(), "stdin")
                     : test_file ? read_text_dataset(task, *test_file, unlabelled)
                                 : read_glue_file(*cli_task.glue, o.input);
  if (data.examples.empty()) throw Error("predict: no input examples");
  EncodedDataset encoded = encode_examples(data, *m.tokenizer, use.max_length);
  EvalResult r = evaluate(m.model, task, encoded, o.batch_size, use.device, use.precision,
                          m.tokenizer->pad_id(), m.group.get());
  if (!speaks_for_group()) return 0;  // rank 0 writes
  if (format == "glue") {
    std::cout << write_glue_submission(*cli_task.glue, o.split, o.out, encoded.indices,
                                       r.predictions)
              << std::endl;
    return 0;
  }
  const std::optional<std::string> active = m.model->bert->active_adapter();
  const HeadConfig& head = m.model->head_config(active);
  std::string text;
  for (size_t i = 0; i < r.predictions.size(); ++i) {
    if (format == "json") {
      text += make_prediction(head, r.logits[i], active).to_json();
    } else if (format == "logits") {
      for (size_t j = 0; j < r.logits[i].size(); ++j) {
        text += (j ? "\t" : "") + std::to_string(r.logits[i][j]);
      }
    } else if (task.regression()) {
      char score[32];
      std::snprintf(score, sizeof score, "%.4f", r.predictions[i]);
      text += score;
    } else {
      text += task.labels.at(static_cast<size_t>(r.predictions[i]));
    }
    text += "\n";
  }
  write_output(o.out, text);
  return 0;
}

void add_use_options(CLI::App* cmd, UseOptions& o) {
  add_model_option(cmd, o.model, "Model directory (config.json, model.safetensors, vocab.txt)")
      ->required();
  cmd->add_option("--adapter-pack", o.adapter_packs,
                  "Adapter pack directory (e.g. a run's best/); repeat it to load several tasks "
                  "onto the one base")
      ->check(CLI::ExistingDirectory)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option(
      "--adapter", o.adapter,
      "Which loaded pack runs (its adapter name; default: the only pack, else the "
      "one named like the task, or the only fusion), a Stack of packs, e.g. \"Stack(lang, sst2)\" "
      "(sst2's adapter on lang's output, with sst2's head), or a fusion, e.g. "
      "\"Fuse(sst2, mrpc)\"");
  cmd->add_option("--max-length", o.max_length,
                  "Tokens per example (default: what the pack, or without one the model directory, "
                  "records, else 128)")
      ->check(integer_range(1));
  cmd->add_option("--batch-size", o.batch_size, "Examples per batch")
      ->check(integer_range(1))
      ->capture_default_str();
  add_device_option(cmd, o.device);
  add_precision_option(
      cmd, o.precision,
      "fp32, bf16 or fp16 (default: what the pack, or without one the model directory, "
      "records, else fp32)");
}

}  // namespace

Command add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainCommandOptions>();
  o->trainer.output_dir = "runs/train";
  CLI::App* cmd = app.add_subcommand(
      "train", "Fine-tune on a GLUE task (adapters by default); keeps the best model");
  cmd->add_option("--task", o->tasks,
                  "GLUE task name, or several joined by ',' (e.g. SST-2,MRPC,RTE) to train them "
                  "together, each on its own adapter and head (best packs in OUT/best/<task>); "
                  "with --train-file, the name of your own task (and of its adapter)")
      ->delimiter(',')
      ->required();
  add_task_choice_options(cmd, o->task_choice, TaskFiles::kTrainDev);
  add_squad_options(cmd, o->squad, /*from_pack=*/false);
  add_data_dir_option(cmd, o->data_dir, "Folder with <TASK>/train.tsv, dev.tsv");
  add_model_option(cmd, o->model, "Base model directory")->required();
  cmd->add_flag("--random-init", o->random_init,
                "With --train full: start from BERT's random initialisation of the model's "
                "config.json, not its weights (the baseline that shows what pretraining adds)");
  add_adapter_options(cmd, o->adapter);
  cmd->add_option("--adapter-name", o->adapter_name,
                  "The adapter's (the task's) name in the pack (default: the task's name)");
  add_train_options(cmd, o->train);
  CLI::Option* fuse =
      cmd->add_option("--fuse", o->fuse,
                      "Train AdapterFusion over these adapters (names of --adapter-pack packs, "
                      "e.g. sst2,mrpc,cola) for the task, the adapters frozen; the best fusion is "
                      "kept in AdapterHub's fusion layout");
  cmd->add_option("--stack-on", o->stack_on,
                  "Train the new adapter (or fusion) on top of these adapters, bottom first "
                  "(names of --adapter-pack packs, e.g. lang: AdapterHub's Stack(lang, task), as "
                  "MAD-X trains task adapters on a language adapter), which stay frozen");
  cmd->add_option("--adapter-pack", o->adapter_packs,
                  "An adapter pack to fuse (--fuse) or to stack on (--stack-on); repeat it for "
                  "each adapter")
      ->check(CLI::ExistingDirectory)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--fusion-config", o->fusion_config,
                  "With --fuse: dynamic (AdapterHub's default), static, or an "
                  "adapter_fusion_config.json")
      ->needs(fuse)
      ->capture_default_str();
  cmd->add_option("--epochs", o->trainer.epochs, "Epochs")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_option("--max-steps", o->trainer.max_steps,
                  "Stop after N optimizer steps (0: all epochs)")
      ->check(integer_range(0))
      ->capture_default_str();
  cmd->add_option("--lr", o->trainer.lr, "Peak learning rate")
      ->check(finite_number(0, /*exclusive=*/true))
      ->capture_default_str();
  cmd->add_option("--batch-size", o->trainer.batch_size, "Examples per batch")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_option("--gradient-accumulation", o->trainer.gradient_accumulation,
                  "Batches per optimizer step")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_option("--max-length", o->max_length,
                  "Tokens per example (default 128; SQuAD windows: 384; at most the model's "
                  "positions)")
      ->check(integer_range(1));
  cmd->add_option("--schedule", o->schedule,
                  "linear, cosine, constant, or wsd (constant, then a linear decay over the "
                  "last 10 % of the steps)")
      ->check(CLI::IsMember(schedule_names()))
      ->capture_default_str();
  cmd->add_option("--warmup-ratio", o->trainer.warmup_ratio, "Share of steps for warmup")
      ->check(finite_number(0, false, 1.0))
      ->capture_default_str();
  cmd->add_option("--weight-decay", o->trainer.weight_decay, "AdamW weight decay")
      ->check(finite_number(0))
      ->capture_default_str();
  cmd->add_option("--max-grad-norm", o->trainer.max_grad_norm, "Gradient clipping (0: off)")
      ->check(finite_number(0))
      ->capture_default_str();
  cmd->add_option("--eval-every", o->trainer.eval_every,
                  "Evaluate every N steps (0: each epoch end)")
      ->check(integer_range(0))
      ->capture_default_str();
  cmd->add_option("--keep-checkpoints", o->trainer.keep_checkpoints,
                  "Checkpoints kept in OUT/checkpoints (the newest; one is saved at each "
                  "evaluation, for --resume)")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_option("--early-stopping", o->trainer.early_stopping_patience,
                  "Stop after N evaluations without improvement")
      ->check(integer_range(0))
      ->capture_default_str();
  cmd->add_option("--train-examples", o->train_examples,
                  "Use only the first N training examples (SQuAD: questions; 0: all)")
      ->check(integer_range(0))
      ->capture_default_str();
  cmd->add_option("--sampling-temperature", o->trainer.sampling_temperature,
                  "Several tasks: batches of task i come with probability ~ size_i^(1/T); 1 "
                  "samples in proportion to the data (each task one pass per epoch), larger T "
                  "flattens towards uniform")
      ->check(finite_number(0, /*exclusive=*/true))
      ->capture_default_str();
  cmd->add_option("--seed", o->trainer.seed, "Random seed")
      ->check(integer_range(0))
      ->capture_default_str();
  add_device_option(cmd, o->device);
  add_precision_option(cmd, o->precision, "fp32 (default), bf16 or fp16 autocast");
  cmd->add_option("--out", o->trainer.output_dir, "Run directory")->capture_default_str();
  cmd->add_option("--log-every", o->trainer.log_every, "Log every N steps")
      ->check(integer_range(1))
      ->capture_default_str();
  add_existing_output_options(cmd, o->trainer.resume, o->trainer.overwrite, "run",
                              "Continue from the run directory's newest checkpoint");
  cmd->add_flag_function(
      "--progress,!--no-progress", [o](int64_t n) { o->trainer.progress = n > 0; },
      "Progress bar on a terminal, log lines otherwise (default on)");
  add_distributed_options(cmd, o->distributed);
  add_recompute_flags(cmd, o->trainer.gradient_checkpointing,
                      o->trainer.recompute_attention_probabilities);
  cmd->add_flag("--last-layer-first-position", o->trainer.last_layer_first_position,
                "Compute the encoder's last layer at the first position only, all that the "
                "classifier reads: the same loss and gradients for most of a layer's work less "
                "(dropout then draws other masks, so a seed trains along another path)");
  cmd->add_flag("--cache-frozen-layers", o->trainer.cache_frozen_layers,
                "With --leave-out 0-N: run the adapter-free lowest layers without dropout and "
                "reuse their outputs after the first epoch, and the dev set's after the first "
                "evaluation (AdapterDrop's cache)");
  cmd->add_flag_function(
      "--group-by-length,!--no-group-by-length",
      [o](int64_t n) { o->trainer.group_by_length = n > 0; },
      "Batch examples of similar length together (default on)");
  return [o] { return run_train(*o); };
}

Command add_eval_command(CLI::App& app) {
  auto o = std::make_shared<UseOptions>();
  CLI::App* cmd =
      app.add_subcommand("eval", "Dev-set metrics (JSON on stdout) of a model and adapter pack");
  cmd->add_option("--task", o->task,
                  "GLUE task (SST-2, MRPC, RTE, CoLA, STS-B, QQP, MNLI, QNLI, WNLI, AX), or the "
                  "name of your own task (with --dev-file)")
      ->required();
  add_use_options(cmd, *o);
  add_task_choice_options(cmd, o->task_choice, TaskFiles::kDev);
  add_squad_options(cmd, o->squad, /*from_pack=*/true);
  add_data_dir_option(cmd, o->data_dir, "GLUE data folder");
  // A split of GLUE's folder: your own file (or SQuAD's) is the whole of what is evaluated.
  of_glue_folder(cmd,
                 cmd->add_option("--split", o->split, "Labelled split of GLUE's folder to evaluate")
                     ->capture_default_str());
  add_distributed_options(cmd, o->distributed);
  return [o] { return run_eval(*o); };
}

Command add_predict_command(CLI::App& app) {
  auto o = std::make_shared<UseOptions>();
  o->split = kPredictSplit;
  CLI::App* cmd = app.add_subcommand(
      "predict",
      "Predictions for a GLUE TSV, lines on stdin, or JSON lines of requests naming their tasks");
  cmd->add_option("--task", o->task,
                  "GLUE task of the input, or the name of your own task (with --test-file); not "
                  "for JSON lines input, where each line names its task");
  add_use_options(cmd, *o);
  add_task_choice_options(cmd, o->task_choice, TaskFiles::kTest);
  add_squad_options(cmd, o->squad, /*from_pack=*/true);
  cmd->add_option("--input", o->input,
                  "GLUE TSV file (e.g. test.tsv), or JSON lines when it ends in .jsonl; default: "
                  "stdin")
      ->check(CLI::ExistingFile);
  cmd->add_option("--input-format", o->input_format,
                  "auto (FILE.jsonl: JSON lines; another FILE: GLUE TSV; stdin: lines), glue, "
                  "lines (text or text<TAB>text_pair per line of stdin), or jsonl ({\"task\", "
                  "\"text\", \"text_pair\"} per line)")
      ->check(CLI::IsMember({"auto", "glue", "lines", "jsonl"}))
      ->capture_default_str();
  cmd->add_option("--format", o->format,
                  "labels (default; one per line), json (one object per line: task, label and "
                  "probabilities, or score; logits), logits (tab-separated), or glue (a "
                  "leaderboard file); JSON lines input is always answered with json")
      ->check(CLI::IsMember({"labels", "json", "logits", "glue"}));
  cmd->add_option("--out", o->out, "Write here instead of stdout (a directory for --format glue)");
  CLI::Option* split =
      cmd->add_option("--split", o->split,
                      "Split name of the submission file (test, test_matched, ...)")
          ->capture_default_str();
  add_distributed_options(cmd, o->distributed);
  return [o, split] {
    o->split_given = split->count() > 0;
    return run_predict(*o);
  };
}

}  // namespace adaptertune::cli
