#pragma once
// Options the subcommands share, so that each concept has one flag, one help text and one
// default across the tool: --model, --device, --precision, the adapter and --train-pooler.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "adaptertune/adapter_config.h"
#include "adaptertune/distributed/process_group.h"
#include "adaptertune/inference/predictor.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/precision.h"
#include "adaptertune/tasks/task_description.h"
#include "adaptertune/training/freeze_policy.h"

namespace adaptertune::cli {

/// Range checks for numeric flags. The message states the valid range and what was given
/// ("--seed: must be an integer >= 0, got -1"), before the value is converted (so that -1 never
/// becomes a huge unsigned number and nan never passes a comparison).
CLI::Validator integer_range(int64_t min, std::optional<int64_t> max = std::nullopt);
/// A finite number >= `min` (> `min` when `exclusive`), and <= `max` when given.
CLI::Validator finite_number(double min, bool exclusive = false,
                             std::optional<double> max = std::nullopt);

/// The length a command runs with: `--max-length` when given, else `preferred`, or all of the
/// model's positions when it has fewer (BertConfig::default_sequence_length()). Throws Error when
/// `--max-length` is more than the model directory's max_position_embeddings, so that a run
/// refuses it up front, naming the flag, rather than failing mid-way.
int64_t max_length_for(const std::string& model_dir, std::optional<int64_t> max_length,
                       int64_t preferred);

/// `--max-length`, `--device` and `--precision` as `serve` and `inspect` take them: what each
/// pack records by default.
void add_predictor_options(CLI::App* cmd, std::optional<int64_t>& max_length, std::string& device,
                           std::optional<std::string>& precision);
/// How `predict` (JSON lines), `serve` and `inspect` run a Predictor: `--device` and
/// `--precision` parsed, `--max-length` checked against the model directory's positions (0: what
/// each pack records).
PredictorOptions predictor_options(const std::string& model_dir, const std::string& device,
                                   const std::optional<std::string>& precision,
                                   std::optional<int64_t> max_length);

/// What eval and predict run with where their flags leave it open: the chosen pack's record (its
/// length, precision, a span head's windows and answers), else the model directory's
/// (read_model_directory_record()), with what to name when the length does not fit the base:
/// `--max-length` when given (or nothing is recorded), else the record.
struct RecordedRun {
  ModelDirectoryRecord record;
  std::string length_source;
};
RecordedRun recorded_run(const std::string& model_dir, const AdapterPackInfo* pack,
                         const std::string& pack_dir, std::optional<int64_t> max_length);

/// `--resume` (help text `resume_help`) and `--overwrite`, which exclude each other: what a
/// command does with an `--out` that already holds a `what` ("run", "model").
void add_existing_output_options(CLI::App* cmd, bool& resume, bool& overwrite,
                                 const std::string& what, const std::string& resume_help);

/// The adapter name `train` gives task `task`'s adapter (its name; adapter names hold no '.').
std::string adapter_name_for(const TaskDescription& task);

/// `--model DIR`: a Hugging Face-layout model directory.
CLI::Option* add_model_option(CLI::App* cmd, std::string& model, const std::string& help);

/// `--device cpu|cuda|cuda:N|auto` (default auto), parsed by adaptertune::parse_device().
CLI::Option* add_device_option(CLI::App* cmd, std::string& device);

/// `--gradient-checkpointing` and `--recompute-attention-probabilities`: what a training command
/// computes again in backward rather than keep (BertEncoderImpl's options of those names).
void add_recompute_flags(CLI::App* cmd, bool& gradient_checkpointing,
                         bool& recompute_attention_probabilities);

/// Data-parallel runs (train, pretrain; eval and predict on files): `--distributed` (join a group
/// even without WORLD_SIZE: a group of one),
/// where the processes meet, the backend and how long to wait for the others.
struct DistributedChoice {
  bool distributed = false;
  std::string init_method = "env://";
  std::string backend = "auto";
  double timeout_seconds = 300;
  /// `--distributed`, or WORLD_SIZE / SLURM_NTASKS above 1 in the environment.
  bool requested() const;
};
/// `--distributed`, `--init-method`, `--distributed-backend` and `--distributed-timeout`.
void add_distributed_options(CLI::App* cmd, DistributedChoice& choice);
/// Joins the group `choice` describes when one is requested (null when not: the process runs
/// alone), with the ranks the environment gives (DistributedOptions::from_environment()), for
/// tensors on `device`. A CUDA device given without an index (`device_flag` "cuda" or "auto")
/// becomes this process's own, cuda:LOCAL_RANK. Blocks until every process has joined.
std::shared_ptr<ProcessGroup> join_group(const DistributedChoice& choice, c10::Device& device,
                                         const std::string& device_flag);

/// `--precision fp32|bf16|fp16`.
CLI::Option* add_precision_option(CLI::App* cmd, std::optional<std::string>& precision,
                                  const std::string& help);

/// What eval and predict run in: `--precision` when given, else what the pack records, where
/// `device` can run it (adaptertune::inference_precision(); its warning is added to `warnings`,
/// for the caller to warn() once it knows whether it speaks for a group).
Precision use_precision(const std::optional<std::string>& precision,
                        const std::optional<Precision>& recorded, c10::Device device,
                        std::vector<std::string>& warnings);

/// Whether this process prints and writes what the command reports: alone, yes; in a group
/// (join_group()), rank 0 only, as every process of the group would report the same.
bool speaks_for_group();

/// `data` with only its first `n` examples (all when `n` is 0 or not fewer): --train-examples.
template <typename Dataset>
Dataset first_examples(Dataset data, int64_t n) {
  if (n > 0 && static_cast<int64_t>(data.examples.size()) > n) {
    data.examples.resize(static_cast<size_t>(n));
  }
  return data;
}

/// What an evaluation ran, for its JSON line: "adapter" (the active task, an adapter or a
/// fusion; null: the plain base), "stacked_on" (the adapters that ran below it, bottom first) and
/// "fused" (the adapters a fusion fuses, in its order; empty for an adapter).
nlohmann::ordered_json active_task_json(const BertModelImpl& bert);

/// "warning: MESSAGE" on stderr when this process speaks_for_group(): once per group.
void warn(const std::string& message);

/// `train`'s line on stderr about the base it starts from: `model_dir`'s weights as `report`
/// found them, or with `random_init` its config.json with BERT's random initialisation.
void report_base(const std::string& model_dir, bool random_init, const LoadReport& report);

/// Error unless the packs given (`infos`, read from --adapter-pack) hold every adapter the pack in
/// `directory` (`info`) was trained stacked on: "DIRECTORY was trained as Stack(...): give the
/// pack(s) of ... with --adapter-pack too", then ` (alternative)` when one is given.
void check_packs_below(const AdapterPackInfo& info, const std::string& directory,
                       const std::vector<AdapterPackInfo>& infos,
                       const std::string& alternative = "");

/// The adapter a command builds: `--adapter`, `--adapter-config`, `--reduction-factor`,
/// `--adapter-size`.
struct AdapterChoice {
  std::optional<std::string> preset;
  std::string config_file;
  std::optional<double> reduction_factor;
  std::optional<int64_t> adapter_size;
  /// `--leave-out 0-5` (AdapterDrop): layers without the adapter, as ranges and single layers.
  std::optional<std::string> leave_out;
};
void add_adapter_options(CLI::App* cmd, AdapterChoice& choice);
/// Layer indices from "0-5", "0,2,4" or "0-2,7" (ascending, no repeats); Error naming `flag`.
std::vector<int64_t> parse_layer_list(const std::string& text, const std::string& flag);
/// The adapter config chosen, or none. Without --adapter or --adapter-config the preset is
/// houlsby when `mode` trains adapters and none otherwise (full or head-only training).
std::optional<AdapterConfig> resolve_adapter(const AdapterChoice& choice, TrainMode mode);

/// `--train adapters|adapters-head|full|head` and `--train-pooler` / `--no-train-pooler`
/// (default: default_train_pooler() of the base).
struct TrainChoice {
  std::string mode = "adapters";
  std::optional<bool> train_pooler;
  /// --top-layers K, with --train top-k.
  std::optional<int64_t> top_layers;
};
void add_train_options(CLI::App* cmd, TrainChoice& choice);
/// The policy --train (and --top-layers) ask for, checked before anything loads: the flags
/// agree (--train top-k has --top-layers, other modes none), and --top-layers fits the layers of
/// `model_dir`'s config.json (with an empty `model_dir`, the library checks them when the policy
/// is applied). The pooler is left to resolve_policy(), which needs the loaded base.
FreezePolicy requested_policy(const TrainChoice& choice, const std::string& model_dir);
/// Error unless `requested` trains the adapter (or fusion) `adapter` when there is one, and
/// needs none when there is none (--train adapters or adapters-head without an adapter), and
/// unless there is one to name when --adapter-name (`adapter_name_flag`) is given.
void check_adapter_for_policy(const FreezePolicy& requested, const TrainChoice& choice,
                              const std::optional<std::string>& adapter,
                              const std::optional<std::string>& adapter_name_flag);
/// Error when --gradient-checkpointing or --recompute-attention-probabilities is given and
/// `requested` trains nothing in the encoder (--train head): no backward pass runs through its
/// layers, so there is nothing to recompute.
void check_recompute_for_policy(const FreezePolicy& requested, const TrainChoice& choice,
                                bool gradient_checkpointing,
                                bool recompute_attention_probabilities);
/// `requested` (requested_policy()'s) with whether the pooler trains resolved: as
/// --train-pooler/--no-train-pooler say, else by default_train_pooler() for the loaded `base`.
FreezePolicy resolve_policy(FreezePolicy requested, const TrainChoice& choice,
                            const BertModelImpl& base);

}  // namespace adaptertune::cli
