#include "common.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/bert_config.h"
#include "adaptertune/device.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"

namespace adaptertune::cli {

CLI::Validator integer_range(int64_t min, std::optional<int64_t> max) {
  const std::string range =
      max ? "an integer from " + std::to_string(min) + " to " + std::to_string(*max)
          : "an integer >= " + std::to_string(min);
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        errno = 0;
        char* end = nullptr;
        const long long value = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE || value < min ||
            (max && value > *max)) {
          return "must be " + range + ", got " + text;
        }
        return {};
      },
      range.substr(3));
}

CLI::Validator finite_number(double min, bool exclusive, std::optional<double> max) {
  const std::string range =
      max ? "a number from " + format_number(min) + " to " + format_number(*max)
          : std::string("a finite number ") + (exclusive ? "> " : ">= ") + format_number(min);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        const bool ok = !text.empty() && *end == '\0' && std::isfinite(value) &&
                        (exclusive ? value > min : value >= min) && (!max || value <= *max);
        return ok ? std::string() : "must be " + range + ", got " + text;
      },
      range);
}

int64_t max_length_for(const std::string& model_dir, std::optional<int64_t> max_length,
                       int64_t preferred) {
  const BertConfig config = BertConfig::from_file(model_dir + "/config.json");
  if (!max_length) return config.default_sequence_length(preferred);
  config.check_sequence_length(*max_length, "--max-length");
  return *max_length;
}

void add_predictor_options(CLI::App* cmd, std::optional<int64_t>& max_length, std::string& device,
                           std::optional<std::string>& precision) {
  cmd->add_option("--max-length", max_length,
                  "Tokens per example (default: what each pack, or for requests without a task the "
                  "model directory, records, else 128)")
      ->check(integer_range(1));
  add_device_option(cmd, device);
  add_precision_option(
      cmd, precision,
      "fp32, bf16 or fp16 (default: what the packs record, or without packs the model "
      "directory, else fp32)");
}

PredictorOptions predictor_options(const std::string& model_dir, const std::string& device,
                                   const std::optional<std::string>& precision,
                                   std::optional<int64_t> max_length) {
  PredictorOptions options;
  // 0: what each pack (or the model directory) records; a given length is checked against the
  // model's positions here, so that the error names the flag.
  options.max_length = max_length ? max_length_for(model_dir, max_length, *max_length) : 0;
  options.device = parse_device(device);
  if (precision) options.precision = parse_precision(*precision);
  return options;
}

RecordedRun recorded_run(const std::string& model_dir, const AdapterPackInfo* pack,
                         const std::string& pack_dir, std::optional<int64_t> max_length) {
  RecordedRun run;
  run.record = pack ? pack->record() : read_model_directory_record(model_dir);
  run.length_source = "--max-length";
  if (!max_length && run.record.max_length > 0) {
    run.length_source =
        pack ? pack_dir + ": max_length" : model_dir + "/config.json: adaptertune.max_length";
  }
  return run;
}

void add_existing_output_options(CLI::App* cmd, bool& resume, bool& overwrite,
                                 const std::string& what, const std::string& resume_help) {
  auto* resume_flag = cmd->add_flag("--resume", resume, resume_help);
  cmd->add_flag("--overwrite", overwrite,
                "Replace the " + what +
                    " already in --out (its files are removed first); without it or --resume, an "
                    "--out that holds anything is refused")
      ->excludes(resume_flag);
}

std::string adapter_name_for(const TaskDescription& task) {
  std::string name = task.name;
  std::replace(name.begin(), name.end(), '.', '_');
  return name;
}

CLI::Option* add_model_option(CLI::App* cmd, std::string& model, const std::string& help) {
  return cmd->add_option("--model", model, help)->check(CLI::ExistingDirectory);
}

CLI::Option* add_device_option(CLI::App* cmd, std::string& device) {
  return cmd
      ->add_option("--device", device,
                   "cpu, cuda, cuda:N, or auto (the first GPU when there is one, else the CPU)")
      ->capture_default_str();
}

void add_recompute_flags(CLI::App* cmd, bool& gradient_checkpointing,
                         bool& recompute_attention_probabilities) {
  cmd->add_flag("--gradient-checkpointing", gradient_checkpointing,
                "Keep only each encoder layer's input for the backward pass and run the layer "
                "again there: the same gradients in a fraction of the activation memory, for "
                "about one more forward pass per step");
  cmd->add_flag("--recompute-attention-probabilities", recompute_attention_probabilities,
                "Compute the attention probabilities again in backward instead of keeping them: "
                "the same gradients in less memory at long sequences, for a few percent more time");
}

bool DistributedChoice::requested() const {
  return distributed || DistributedOptions::requested_by_environment();
}

void add_distributed_options(CLI::App* cmd, DistributedChoice& choice) {
  cmd->add_flag("--distributed", choice.distributed,
                "Run data-parallel even without WORLD_SIZE in the environment (it switches on "
                "by itself when WORLD_SIZE or SLURM_NTASKS is above 1): ranks from torchrun's or "
                "Slurm's variables; training shares out every batch (--batch-size is the global "
                "batch), eval and predict on files share out their batches");
  cmd->add_option("--init-method", choice.init_method,
                  "Where the processes meet: env:// (MASTER_ADDR, MASTER_PORT), tcp://HOST:PORT "
                  "or file:///PATH (a new file every process can reach)")
      ->capture_default_str();
  cmd->add_option("--distributed-backend", choice.backend,
                  "gloo, nccl (CUDA), or auto (nccl on CUDA when built with it, else gloo)")
      ->check(CLI::IsMember({"auto", "gloo", "nccl"}))
      ->capture_default_str();
  cmd->add_option("--distributed-timeout", choice.timeout_seconds,
                  "Seconds to wait for the other processes before failing")
      ->check(finite_number(0, /*exclusive=*/true))
      ->capture_default_str();
}

namespace {
// Set by join_group() (a process joins one group at most); a flag, not the group, which the
// command owns and may have let go by the time an error is reported.
bool this_process_speaks = true;
}  // namespace

bool speaks_for_group() {
  return this_process_speaks;
}

nlohmann::ordered_json active_task_json(const BertModelImpl& bert) {
  const std::optional<std::string> active = bert.active_adapter();
  std::vector<std::string> below = bert.tasks().active_stack();
  if (!below.empty()) below.pop_back();
  return {{"adapter", active ? nlohmann::ordered_json(*active) : nullptr},
          {"stacked_on", below},
          {"fused", active ? bert.tasks().at(*active).fused : std::vector<std::string>()}};
}

void warn(const std::string& message) {
  if (speaks_for_group()) std::fprintf(stderr, "warning: %s\n", message.c_str());
}

void report_base(const std::string& model_dir, bool random_init, const LoadReport& report) {
  if (random_init) {
    std::fprintf(stderr, "train: --random-init: %s/config.json, BERT's random initialisation\n",
                 model_dir.c_str());
  } else {
    std::fprintf(stderr, "train: loaded %s: %s\n", model_dir.c_str(), report.summary().c_str());
  }
}

void check_packs_below(const AdapterPackInfo& info, const std::string& directory,
                       const std::vector<AdapterPackInfo>& infos, const std::string& alternative) {
  std::vector<std::string> given;
  for (const auto& other : infos) given.push_back(other.name);
  const std::vector<std::string> missing = info.missing_below(given);
  if (missing.empty()) return;
  throw Error(directory + " was trained as " + Stack(info.trained_stack()).describe() +
              ": give the pack" + (missing.size() == 1 ? " of " : "s of ") + joined(missing) +
              " with --adapter-pack too" + (alternative.empty() ? "" : " (" + alternative + ")"));
}

std::shared_ptr<ProcessGroup> join_group(const DistributedChoice& choice, c10::Device& device,
                                         const std::string& device_flag) {
  if (!choice.requested()) return nullptr;
  DistributedOptions group = DistributedOptions::from_environment();
  group.init_method = choice.init_method;
  group.backend = choice.backend;
  group.timeout_seconds = choice.timeout_seconds;
  // One GPU per process: --device cuda or auto means the process's own, cuda:LOCAL_RANK.
  if (device.is_cuda() && device_flag.find(':') == std::string::npos) {
    device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(group.local_rank));
  }
  auto joined = std::make_shared<ProcessGroup>(group, device);
  this_process_speaks = is_main_process(joined.get());
  return joined;
}

CLI::Option* add_precision_option(CLI::App* cmd, std::optional<std::string>& precision,
                                  const std::string& help) {
  return cmd->add_option("--precision", precision, help)
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
}

Precision use_precision(const std::optional<std::string>& precision,
                        const std::optional<Precision>& recorded, c10::Device device,
                        std::vector<std::string>& warnings) {
  std::string warning;
  const Precision chosen =
      inference_precision(precision ? std::optional(parse_precision(*precision)) : std::nullopt,
                          recorded, device, &warning);
  if (!warning.empty()) warnings.push_back(warning);
  return chosen;
}

void add_adapter_options(CLI::App* cmd, AdapterChoice& choice) {
  auto* preset = cmd->add_option("--adapter", choice.preset,
                                 "houlsby, pfeiffer or none (default: houlsby when --train "
                                 "trains adapters, else none)")
                     ->check(CLI::IsMember({"houlsby", "pfeiffer", "none"}));
  cmd->add_option("--adapter-config", choice.config_file,
                  "AdapterHub-style adapter_config.json (instead of --adapter)")
      ->check(CLI::ExistingFile)
      ->excludes(preset);
  auto* rf = cmd->add_option("--reduction-factor", choice.reduction_factor,
                             "Bottleneck m = hidden_size // N")
                 ->check(finite_number(0, /*exclusive=*/true));
  cmd->add_option("--adapter-size", choice.adapter_size, "Bottleneck size m")
      ->check(integer_range(1))
      ->excludes(rf);
  cmd->add_option("--leave-out", choice.leave_out,
                  "Layers without the adapter (AdapterDrop), e.g. 0-5 or 0,2,4: they run as the "
                  "frozen base (AdapterHub's leave_out)");
}

std::vector<int64_t> parse_layer_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> layers;
  auto bad = [&](const std::string& why) {
    return Error(flag + ": \"" + text + "\" " + why + " (expected layers such as 0-5 or 0,2,4)");
  };
  auto number = [&](const std::string& part) {
    if (part.empty() || part.size() > 6 ||
        part.find_first_not_of("0123456789") != std::string::npos) {
      throw bad("is not a list of layer numbers");
    }
    return static_cast<int64_t>(std::stol(part));
  };
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    const std::string item = text.substr(start, comma - start);
    const size_t dash = item.find('-');
    const int64_t first = number(item.substr(0, dash));
    const int64_t last = dash == std::string::npos ? first : number(item.substr(dash + 1));
    if (last < first) throw bad("has a range that runs backwards");
    for (int64_t layer = first; layer <= last; ++layer) {
      if (!layers.empty() && layer <= layers.back()) throw bad("repeats or is not ascending");
      layers.push_back(layer);
    }
    start = comma + 1;
  }
  return layers;
}

std::optional<AdapterConfig> resolve_adapter(const AdapterChoice& choice, TrainMode mode) {
  std::optional<AdapterConfig> adapter;
  if (!choice.config_file.empty()) {
    adapter = AdapterConfig::from_file(choice.config_file);
  } else {
    const bool trains_adapters =
        mode == TrainMode::kAdapters || mode == TrainMode::kAdaptersAndHead;
    const std::string preset = choice.preset.value_or(trains_adapters ? "houlsby" : "none");
    if (preset != "none") adapter = AdapterConfig::preset(preset);
  }
  if (adapter) {
    if (choice.reduction_factor) adapter->reduction_factor = *choice.reduction_factor;
    if (choice.adapter_size) adapter->adapter_size = *choice.adapter_size;
    if (choice.leave_out) adapter->leave_out = parse_layer_list(*choice.leave_out, "--leave-out");
    adapter->validate();
  } else if (choice.reduction_factor || choice.adapter_size) {
    throw Error("--reduction-factor and --adapter-size need an adapter (--adapter is none)");
  }
  if (!adapter && choice.leave_out) {
    throw Error("--leave-out needs an adapter (--adapter is none)");
  }
  return adapter;
}

void add_train_options(CLI::App* cmd, TrainChoice& choice) {
  cmd->add_option("--train", choice.mode,
                  "What trains: adapters (adapters + LayerNorms + head), adapters-head, full, "
                  "head, or top-k (the top --top-layers K layers, pooler and head)")
      ->check(CLI::IsMember({"adapters", "adapters-head", "full", "head", "top-k"}))
      ->capture_default_str();
  cmd->add_option("--top-layers", choice.top_layers,
                  "With --train top-k: how many of the top encoder layers train")
      ->check(integer_range(1));
  cmd->add_flag_function(
      "--train-pooler,!--no-train-pooler", [&choice](int64_t n) { choice.train_pooler = n > 0; },
      "Train the pooler too (default: when the base's checkpoint has no pooler)");
}

namespace {

// Error when the flags beside --train disagree with it: --train top-k lacks --top-layers or
// another mode has it, or --train-pooler/--no-train-pooler is given to a mode that trains the
// pooler whatever they say (full, top-k).
void check_train_flags(const TrainChoice& choice) {
  if (choice.mode == "top-k" && !choice.top_layers) {
    throw Error("--train top-k needs --top-layers K (how many of the top layers train)");
  }
  if (choice.mode != "top-k" && choice.top_layers) {
    throw Error("--top-layers applies to --train top-k, not --train " + choice.mode);
  }
  if (choice.train_pooler && (choice.mode == "full" || choice.mode == "top-k")) {
    throw Error(std::string(*choice.train_pooler ? "--train-pooler" : "--no-train-pooler") +
                " does not apply to --train " + choice.mode +
                ", which trains the pooler whatever it says");
  }
}

}  // namespace

FreezePolicy requested_policy(const TrainChoice& choice, const std::string& model_dir) {
  check_train_flags(choice);
  FreezePolicy requested = FreezePolicy::from_name(choice.mode);
  if (choice.top_layers) {
    requested.top_layers = *choice.top_layers;
    if (!model_dir.empty()) {
      requested.check_fits(BertConfig::from_file(model_dir + "/config.json").num_hidden_layers);
    }
  }
  return requested;
}

void check_adapter_for_policy(const FreezePolicy& requested, const TrainChoice& choice,
                              const std::optional<std::string>& adapter,
                              const std::optional<std::string>& adapter_name_flag) {
  if (adapter) {
    check_policy_trains_adapter(requested, *adapter);
  } else if (requested.mode == TrainMode::kAdapters ||
             requested.mode == TrainMode::kAdaptersAndHead) {
    throw Error("--train " + choice.mode + " needs an adapter (--adapter houlsby or pfeiffer)");
  } else if (adapter_name_flag) {
    throw Error("--adapter-name " + *adapter_name_flag +
                " names the adapter a run trains; --train " + choice.mode +
                " trains none (it keeps a model directory)");
  }
}

void check_recompute_for_policy(const FreezePolicy& requested, const TrainChoice& choice,
                                bool gradient_checkpointing,
                                bool recompute_attention_probabilities) {
  if (requested.mode != TrainMode::kHead) return;
  const char* flag = gradient_checkpointing              ? "--gradient-checkpointing"
                     : recompute_attention_probabilities ? "--recompute-attention-probabilities"
                                                         : nullptr;
  if (flag) {
    throw Error(std::string(flag) + " saves memory in the encoder's backward pass; --train " +
                choice.mode + " trains nothing in the encoder, so none runs");
  }
}

FreezePolicy resolve_policy(FreezePolicy requested, const TrainChoice& choice,
                            const BertModelImpl& base) {
  requested.train_pooler = choice.train_pooler.value_or(default_train_pooler(base));
  return requested;
}

}  // namespace adaptertune::cli
