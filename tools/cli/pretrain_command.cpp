// `adaptertune pretrain`: masked-LM pretraining of a BERT from a config.json on plain-text files,
// writing a Hugging Face model directory.

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "adaptertune/bert_config.h"
#include "adaptertune/device.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/training/interrupt.h"
#include "adaptertune/training/pretraining.h"
#include "adaptertune/training/scheduler.h"
#include "commands.h"
#include "common.h"

namespace adaptertune::cli {
namespace {

struct PretrainCommandOptions {
  std::string config;
  std::string vocab;
  /// --lowercase/--no-lowercase; unset: on, or the casing of --init-from's own vocabulary.
  std::optional<bool> lowercase;
  std::string device = "auto";
  std::optional<std::string> precision;
  bool save_bf16 = false;
  std::vector<std::string> text;
  std::optional<std::string> eval_text;
  std::string out;
  std::string schedule = "linear";
  DistributedChoice distributed;
  PretrainOptions train;
};

int run(PretrainCommandOptions& o) {
  // Continued pretraining reads the model's own config and vocabulary unless told otherwise.
  const std::string& init_from = o.train.init_from;
  // A model continued keeps its tokenizer as its directory describes it, casing included
  // (tokenizer_config.json's do_lower_case): a cased model's text lower-cased would train it on
  // text it never sees in use, and its directory would then say uncased.
  const bool model_vocab = o.vocab.empty() && !init_from.empty();
  if (o.config.empty()) {
    if (init_from.empty()) throw Error("pretrain: --config is required (or --init-from)");
    o.config = init_from + "/config.json";
  }
  if (o.vocab.empty()) {
    if (init_from.empty()) throw Error("pretrain: --vocab is required (or --init-from)");
    o.vocab = init_from + "/vocab.txt";
    if (!optional_file_exists(o.vocab)) {
      throw Error(init_from +
                  ": no vocab.txt (pretrain reads WordPiece vocabularies; give --vocab)");
    }
  }
  BertConfig config = BertConfig::from_file(o.config);
  o.train.device = parse_device(o.device);
  o.train.precision = parse_precision(o.precision.value_or("fp32"));
  o.train.schedule = parse_schedule(o.schedule);
  // The library leaves decay_steps unread for the other schedules; a flag given is refused.
  if (o.train.decay_steps > 0 && o.train.schedule != ScheduleKind::kWarmupStableDecay) {
    throw Error("--decay-steps is the length of wsd's final decay; --schedule " + o.schedule +
                " decays over every step after the warmup");
  }
  if (o.save_bf16) o.train.save_dtype = c10::ScalarType::BFloat16;
  // Everything is checked before the text is read or anything is written.
  o.train.inputs = o.text;
  if (o.eval_text) o.train.inputs.push_back(*o.eval_text);
  o.train.inputs.push_back(o.config);
  o.train.inputs.push_back(o.vocab);
  config.check_sequence_length(o.train.max_length, "--max-length");
  if (o.distributed.requested()) {
    // What fails alike on every process fails before the processes meet.
    o.train.validate();
    o.train.process_group = join_group(o.distributed, o.train.device, o.device);
  }
  const bool main_process = speaks_for_group();
  check_pretrain_options(config, o.out, o.train);
  const auto tokenizer = model_vocab ? load_tokenizer(init_from, o.lowercase)
                                     : load_tokenizer_file(o.vocab, /*sentencepiece=*/false,
                                                           o.lowercase.value_or(true));
  std::vector<std::string> lines;
  std::vector<std::pair<size_t, int64_t>> origin;  // file index and line number of each line
  for (size_t file = 0; file < o.text.size(); ++file) {
    std::ifstream in(o.text[file]);
    if (!in) throw Error(o.text[file] + ": cannot open text file");
    int64_t number = 0;
    for (std::string line; std::getline(in, line);) {
      ++number;
      if (line.empty()) continue;
      lines.push_back(std::move(line));
      origin.emplace_back(file, number);
    }
  }
  if (o.eval_text) {
    std::ifstream in(*o.eval_text);
    if (!in) throw Error(*o.eval_text + ": cannot open the held-out text");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) o.train.eval_lines.push_back(std::move(line));
    }
    if (o.train.eval_lines.empty()) throw Error(*o.eval_text + ": the held-out text is empty");
  }
  o.train.line_source = [&](size_t index) {
    return o.text[origin[index].first] + ":" + std::to_string(origin[index].second);
  };
  if (main_process) {
    std::cerr << "pretrain: " << lines.size() << " lines from " << o.text.size() << " file(s); "
              << config.num_hidden_layers << " layers, hidden " << config.hidden_size << ", "
              << o.train.steps << " steps of " << o.train.gradient_accumulation << " x "
              << o.train.batch_size << " x " << o.train.max_length << " tokens on "
              << o.train.device.str() << " (" << precision_name(o.train.precision) << ")";
    if (o.train.process_group) {
      std::cerr << ", " << o.train.process_group->world_size() << " processes ("
                << o.train.process_group->backend() << ")";
    }
    std::cerr << "\n";
  }
  const auto start = std::chrono::steady_clock::now();
  o.train.on_log = [&](const PretrainLogEntry& entry) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string scaling;  // fp16 only: a falling scale or skipped steps say the run overflows
    if (entry.loss_scale > 0) {
      char buffer[96];
      std::snprintf(buffer, sizeof buffer, "  loss scale %g, %lld skipped", entry.loss_scale,
                    static_cast<long long>(entry.skipped_steps));
      scaling = buffer;
    }
    std::fprintf(stderr,
                 "pretrain: step %lld/%lld  mlm loss %.4f  lr %.2e  %.0f seq/s  ETA %s  %.1f s%s\n",
                 static_cast<long long>(entry.step), static_cast<long long>(o.train.steps),
                 entry.loss, entry.lr, entry.examples_per_second,
                 format_duration(entry.seconds_left).c_str(), seconds, scaling.c_str());
  };
  o.train.on_message = [](const std::string& text) { std::fprintf(stderr, "%s\n", text.c_str()); };
  o.train.on_eval = [&](int64_t step, double loss) {
    std::fprintf(stderr, "pretrain: step %lld/%lld  held-out mlm loss %.4f\n",
                 static_cast<long long>(step), static_cast<long long>(o.train.steps), loss);
  };
  PretrainResult result;
  {
    StopOnInterrupt ctrl_c;
    result = pretrain_mlm(config, lines, *tokenizer, o.out, o.train);
  }
  if (!main_process) return result.interrupted ? 130 : 0;
  if (result.skipped_steps > 0) {
    std::fprintf(stderr, "pretrain: %lld of %lld steps skipped: fp16's loss scaling dropped them\n",
                 static_cast<long long>(result.skipped_steps),
                 static_cast<long long>(result.steps));
  }
  if (result.interrupted) return 130;
  if (result.stopped) return 0;  // as asked: its checkpoint was reported on stderr
  if (result.eval_loss) {
    std::printf("pretrain: wrote %s (final mlm loss %.4f, held-out %.4f)\n", o.out.c_str(),
                result.final_loss, *result.eval_loss);
  } else {
    std::printf("pretrain: wrote %s (final mlm loss %.4f)\n", o.out.c_str(), result.final_loss);
  }
  return 0;
}

}  // namespace

Command add_pretrain_command(CLI::App& app) {
  auto o = std::make_shared<PretrainCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "pretrain", "Masked-LM pretraining of a BERT on plain text, written as a model directory");
  cmd->add_option("--config", o->config,
                  "Model config.json (required, unless --init-from gives it: DIR/config.json)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--vocab", o->vocab,
                  "WordPiece vocab.txt (required, unless --init-from gives it: DIR/vocab.txt)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--init-from", o->train.init_from,
                  "Continue pretraining the model in this directory: its weights (and masked-LM "
                  "head, when it has one) with a new optimizer and learning-rate schedule")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--text", o->text, "Plain-text files, one sentence or paragraph per line")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out, "Output model directory")->required();
  CLI::Option* eval_text =
      cmd->add_option(
             "--eval-text", o->eval_text,
             "Held-out plain text (never trained on): its masked-LM loss, on a masking drawn "
             "once, is logged every --eval-every steps and at the end")
          ->check(CLI::ExistingFile);
  cmd->add_option("--eval-every", o->train.eval_every,
                  "Measure the held-out loss every N steps (0: only at the end)")
      ->check(integer_range(0))
      ->capture_default_str()
      ->needs(eval_text);
  cmd->add_option("--eval-mask-probability", o->train.eval_masking.mask_probability,
                  "Share of the held-out text's tokens masked for its loss (BERT's 0.15 whatever "
                  "--mask-probability trains with, so that runs are measured on the same task)")
      ->check(finite_number(0, /*exclusive=*/true, 0.99))
      ->capture_default_str()
      ->needs(eval_text);
  cmd->add_option("--eval-seed", o->train.eval_seed,
                  "Seed of the held-out text's masking (drawn once, the same in every run)")
      ->check(integer_range(0))
      ->capture_default_str()
      ->needs(eval_text);
  cmd->add_option("--steps", o->train.steps, "Optimizer steps")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_option("--batch-size", o->train.batch_size, "Sequences per step")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_option("--max-length", o->train.max_length, "Tokens per packed sequence")
      ->check(integer_range(3, 100000))
      ->capture_default_str();
  cmd->add_option("--lr", o->train.lr, "Peak learning rate")
      ->check(finite_number(0, /*exclusive=*/true))
      ->capture_default_str();
  cmd->add_option("--warmup-ratio", o->train.warmup_ratio, "Share of steps for linear warmup")
      ->check(finite_number(0, false, 1.0))
      ->capture_default_str();
  // Given after a recipe's --warmup-ratio, --warmup-steps replaces it (pretrain_wsd.sh does so).
  cmd->add_option("--warmup-steps", o->train.warmup_steps,
                  "Warmup in steps, in place of --warmup-ratio (a run to be extended keeps it)")
      ->check(integer_range(0));
  cmd->add_option("--schedule", o->schedule,
                  "Decay after the warmup: linear, cosine, constant, or wsd (constant, then a "
                  "linear decay over the last --decay-steps)")
      ->check(CLI::IsMember(schedule_names()))
      ->capture_default_str();
  cmd->add_option("--decay-steps", o->train.decay_steps,
                  "wsd: steps of the final decay (default: 10 % of --steps)")
      ->check(integer_range(1));
  cmd->add_option("--gradient-accumulation", o->train.gradient_accumulation,
                  "Batches per optimizer step (a larger batch in the same memory)")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_option("--max-grad-norm", o->train.max_grad_norm, "Gradient clipping (0: off)")
      ->check(finite_number(0))
      ->capture_default_str();
  cmd->add_option("--weight-decay", o->train.weight_decay, "AdamW weight decay")
      ->check(finite_number(0))
      ->capture_default_str();
  cmd->add_option("--mask-probability", o->train.masking.mask_probability,
                  "Share of tokens chosen for prediction (BERT: 0.15)")
      ->check(finite_number(0, /*exclusive=*/true, 0.99))
      ->capture_default_str();
  cmd->add_option("--seed", o->train.seed, "Random seed")
      ->check(integer_range(0))
      ->capture_default_str();
  add_device_option(cmd, o->device);
  add_precision_option(cmd, o->precision, "fp32 (default), bf16 or fp16 autocast");
  add_recompute_flags(cmd, o->train.gradient_checkpointing,
                      o->train.recompute_attention_probabilities);
  cmd->add_flag_function(
      "--lowercase,!--no-lowercase", [o](int64_t count) { o->lowercase = count > 0; },
      "Lower-case and strip accents, for an uncased vocabulary (default on; with --init-from and "
      "no --vocab, the model's own do_lower_case); recorded as do_lower_case in the model's "
      "tokenizer_config.json");
  cmd->add_flag("--whole-word-masking", o->train.masking.whole_word_masking, "Mask whole words");
  cmd->add_flag("--save-bf16", o->save_bf16,
                "Save the weights in bfloat16 (half the size; they load back as float32)");
  cmd->add_option("--log-every", o->train.log_every, "Log every N steps")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_option("--stop-after", o->train.stop_after_step,
                  "Stop after step N, with a checkpoint saved there and no model written, as "
                  "Ctrl-C does (--resume continues): a point to branch a decay off")
      ->check(integer_range(1));
  cmd->add_option("--checkpoint-every", o->train.checkpoint_every,
                  "Save a checkpoint every N steps (0: only on Ctrl-C or --stop-after)")
      ->check(integer_range(0))
      ->capture_default_str();
  cmd->add_option("--keep-checkpoints", o->train.keep_checkpoints, "Checkpoints kept on disk")
      ->check(integer_range(1))
      ->capture_default_str();
  cmd->add_option("--checkpoint-dir", o->train.checkpoint_dir,
                  "Checkpoint directory (default: OUT/checkpoints, removed when the run finishes)");
  add_existing_output_options(cmd, o->train.resume, o->train.overwrite, "model",
                              "Continue from the newest checkpoint (same text and options; "
                              "--steps may grow while the learning rates so far stay the same)");
  add_distributed_options(cmd, o->distributed);
  cmd->add_option("--branch-from", o->train.branch_from,
                  "Start from a checkpoint of another run (a checkpoint-<step> directory, or a "
                  "run's checkpoint directory: its newest), e.g. a wsd decay branched off a long "
                  "run: --steps = its step + --decay-steps. Same text and options as that run")
      ->check(CLI::ExistingDirectory);
  return [o] { return run(*o); };
}

}  // namespace adaptertune::cli
