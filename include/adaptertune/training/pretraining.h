#pragma once
/// @file pretraining.h
/// Masked-language-model pretraining of a BERT base (BERT's 80/10/10 masking).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "adaptertune/bert_config.h"
#include "adaptertune/precision.h"
#include "adaptertune/text/tokenizer.h"
#include "adaptertune/training/scheduler.h"

namespace adaptertune {

class ProcessGroup;

struct MlmMaskingOptions {
  /// Share of (non-special) tokens chosen for prediction.
  double mask_probability = 0.15;
  /// Choose whole words (a token and its `##` continuations) instead of single tokens.
  bool whole_word_masking = false;
};

/// BERT's masking on a [batch, seq] batch: of the chosen tokens 80 % become `[MASK]`, 10 % a random
/// token, 10 % stay; [CLS], [SEP] and padding are never chosen. Returns the masked ids and the
/// labels (the original id where chosen, -100 elsewhere). Uses LibTorch's global RNG.
std::pair<at::Tensor, at::Tensor> mask_for_mlm(const at::Tensor& input_ids,
                                               const Tokenizer& tokenizer,
                                               const MlmMaskingOptions& options);

/// Packs consecutive lines into sequences `[CLS] s1 [SEP] s2 [SEP] …` of at most `max_length`
/// tokens (a line longer than that is truncated). Empty lines are skipped. A line the tokenizer
/// refuses (invalid UTF-8) is an Error that `line_source(index)` names ("corpus.txt:12"), else
/// "line N of the text".
std::vector<Encoding> pack_sentences(
    const std::vector<std::string>& lines, const Tokenizer& tokenizer, int64_t max_length,
    const std::function<std::string(size_t)>& line_source = nullptr);

/// One logged point of a pretraining run, as PretrainOptions::on_log receives it and
/// metrics.jsonl records it (a "train" event).
struct PretrainLogEntry {
  int64_t step = 0;
  /// 1-based pass over the packed text.
  int64_t epoch = 1;
  /// Masked-LM loss averaged over the optimizer steps since the previous entry.
  double loss = 0;
  /// The learning rate of the entry's step.
  double lr = 0;
  /// Packed sequences per second since the previous entry (the global batch's: a group's
  /// processes together).
  double examples_per_second = 0;
  /// Seconds the remaining steps take at that rate (0 at the last step, or before a rate is
  /// known).
  double seconds_left = 0;
  /// fp16's loss scale after the step and the steps it has skipped so far, resumed runs'
  /// included; 0 and 0 in fp32 and bf16, which scale nothing.
  double loss_scale = 0;
  int64_t skipped_steps = 0;
};

/// Options of pretrain_mlm().
struct PretrainOptions {
  int64_t max_length = 128;
  int64_t batch_size = 64;
  int64_t steps = 1000;
  double lr = 5e-4;
  double warmup_ratio = 0.06;
  /// When ≥ 0, the warmup in steps instead of `warmup_ratio`: a run that may be extended later
  /// (`steps` raised on resume) keeps its warmup.
  int64_t warmup_steps = -1;
  /// How the learning rate decays after the warmup (linear: to 0 at the last step).
  ScheduleKind schedule = ScheduleKind::kLinear;
  /// ScheduleKind::kWarmupStableDecay: the steps of the final decay (0: 10 % of `steps`).
  int64_t decay_steps = 0;
  double weight_decay = 0.01;
  /// Clip the global gradient norm to this before each step (0: no clipping).
  double max_grad_norm = 1.0;
  /// Batches of `batch_size` sequences per optimizer step (a larger batch in the same memory).
  int64_t gradient_accumulation = 1;
  uint64_t seed = 42;
  c10::Device device = c10::Device(c10::kCPU);
  Precision precision = Precision::kFloat32;
  /// Gradient checkpointing of every encoder layer (BertEncoderImpl::set_gradient_checkpointing()):
  /// the same gradients in a fraction of the activation memory, for about one more forward pass
  /// per step; a larger batch or model where memory is what limits them. Dropout draws the same
  /// masks, so a run trains the same weights (to float rounding) and may resume with it or
  /// without.
  bool gradient_checkpointing = false;
  /// The attention probabilities computed again in backward instead of kept
  /// (BertEncoderImpl::set_recompute_attention_probabilities()): the same weights too, in less
  /// memory at long sequences, for a few percent more time.
  bool recompute_attention_probabilities = false;
  MlmMaskingOptions masking;
  /// Data-parallel pretraining: the group this process trains in (distributed/process_group.h);
  /// null: one process. Every process of the group calls pretrain_mlm() with the same options and
  /// text. `batch_size` is then the global batch: every process packs and masks each batch as one
  /// process would (the same tokens masked) and trains on its slice of the rows, and the
  /// gradients are all-reduced once per optimizer step, so that a group trains the weights one
  /// process trains (to float rounding), and a run resumes with any number of processes. Each
  /// batch's dropout is drawn from the seed and the batch's place in the run; on the CPU each
  /// process drops its rows as one process drops them, dropout on or off. On other devices
  /// (at::dropout's masks follow the slice's shape) each process draws from a stream of its own
  /// (the rank's too), so that with dropout on a group there takes another path than one
  /// process, reproducibly. The held-out loss is shared out too. Only rank 0 writes the output
  /// and checkpoint directories (which every process must be able to read for a resume) and
  /// calls `on_log`, `on_eval` and `on_message`; Ctrl-C on any process stops all of them at the
  /// next step. `batch_size` must be at least the group's size.
  std::shared_ptr<ProcessGroup> process_group;
  /// dtype of the saved weights ("bfloat16" halves the file; they load back as float32).
  c10::ScalarType save_dtype = c10::ScalarType::Float;
  /// Called every `log_every` steps, and at the last step, with what the step logs.
  int64_t log_every = 50;
  std::function<void(const PretrainLogEntry&)> on_log;
  /// Called with notes for the user (resumed from …, checkpoint saved at …).
  std::function<void(const std::string&)> on_message;
  /// Called after every optimizer step with the step number (custom logging, tests).
  std::function<void(int64_t)> on_step;

  /// Held-out text (never trained on), packed like the training text: its masked-LM loss is
  /// measured every `eval_every` steps and at the end, and at step 0 of a continuation
  /// (`init_from`, not resumed), so that its log starts from the model it continues. Its masking is
  /// drawn once, from `eval_seed`, so that every measurement (and every run, and a resumed one)
  /// masks the same tokens; it leaves the training's random numbers as they were.
  std::vector<std::string> eval_lines;
  /// Measure the held-out loss every N optimizer steps (0: only at the end).
  int64_t eval_every = 0;
  /// How the held-out text is masked: BERT's 15 % by default, whatever `masking` trains with, so
  /// that runs that train with different masking rates are measured on the same task.
  MlmMaskingOptions eval_masking;
  uint64_t eval_seed = 1234;
  /// Called with (step, held-out masked-LM loss per masked token).
  std::function<void(int64_t, double)> on_eval;

  /// Stop once the run has taken this many optimizer steps (0: run to `steps`), with a checkpoint
  /// saved there and no model written, so that `resume` continues the same run: how a long run's
  /// point to branch a decay off (`branch_from`) is reached by a command rather than by the
  /// timing of Ctrl-C. Must lie before `steps`, and after the step a resumed run starts from.
  int64_t stop_after_step = 0;
  /// Save a checkpoint every N optimizer steps (0: only when interrupted or stopped).
  int64_t checkpoint_every = 500;
  /// Complete checkpoints kept on disk.
  int keep_checkpoints = 1;
  /// Where checkpoints go; empty means `<output_dir>/checkpoints`, which is removed once the
  /// finished model is written (a directory given here is left as it is).
  std::string checkpoint_dir;
  /// Names line `index` of the text in errors ("corpus.txt:12"); unset: "line N of the text".
  std::function<std::string(size_t)> line_source;

  /// A model directory to start from instead of random weights (continued pretraining): its
  /// base weights, and its masked-LM head (`cls.*`) when it has one (pretrain_mlm() writes it;
  /// a plain `BertModel` directory gets a new head), with a new optimizer and learning-rate
  /// schedule. Its config.json must describe the same architecture as the run's config (dropout
  /// and initializer_range may differ). Empty: random initialisation. A resumed run takes its
  /// weights from the checkpoint, not from here, and must name the same model as the run it
  /// resumes: the checkpoint records the starting weights' identity (base_weights_sha256()).
  std::string init_from;

  /// Continue from the newest checkpoint, if there is one (same text, config and options). A
  /// finished model in the output directory is not resumed: that needs `overwrite`.
  ///
  /// `steps` and the schedule may change on resume where the steps already taken keep their
  /// learning rates: a constant or wsd schedule (with `warmup_steps`) can be extended while its
  /// decay has not begun. Anything else that changes the rates so far is refused, naming the
  /// first step whose rate would differ.
  bool resume = false;
  /// A checkpoint of another run to continue from, when this run has none of its own yet: a
  /// `checkpoint-<step>` directory, or a run's checkpoint directory (its newest). The same checks
  /// as `resume` apply (same text, options, starting model, and rates so far), and this run's
  /// checkpoints and model go to its own directories. This is how a wsd decay is branched off a
  /// long run at constant rate without stopping it: a run of `steps` = the checkpoint's step +
  /// `decay_steps`. A run that has checkpoints of its own resumes from those instead.
  std::string branch_from;
  /// Replace a model already in the output directory (its files are removed first). Without
  /// `resume` or `overwrite`, an output directory that holds anything is refused, and one that
  /// holds anything but a model's files is never written into.
  bool overwrite = false;
  /// Files the run reads (config, vocabulary, text): none may lie in the output directory.
  std::vector<std::string> inputs;

  /// Throws Error naming the first option out of its range. Changes nothing.
  void validate() const;
};

/// Checks `options` and the output directory (as pretrain_mlm() does first) without writing
/// anything, for a caller that wants the checks before it reads the text.
void check_pretrain_options(const BertConfig& config, const std::string& output_dir,
                            const PretrainOptions& options);

/// What pretrain_mlm() did.
struct PretrainResult {
  /// Loss averaged over the steps since the last log line (the last window).
  double final_loss = 0;
  int64_t steps = 0;
  /// stop_requested() was seen: a checkpoint was saved and no model was written.
  bool interrupted = false;
  /// The run reached `stop_after_step`: a checkpoint was saved and no model was written.
  bool stopped = false;
  /// The run ended before `steps` (interrupted or stopped): a checkpoint to resume, no model.
  bool paused() const { return interrupted || stopped; }
  /// The last held-out masked-LM loss (when eval_lines were given and it was measured).
  std::optional<double> eval_loss;
  /// Steps whose update fp16's loss scaling dropped because a gradient overflowed
  /// (TrainingEngineOptions::loss_scaling; always 0 in fp32 and bf16), resumed runs' included.
  int64_t skipped_steps = 0;
};

/// Pretrains a BERT of `config` on `lines` and writes a Hugging Face model directory to
/// `output_dir`: config.json and model.safetensors in the layout of Hugging Face's
/// `BertForMaskedLM` (`bert.*` and the masked-LM head `cls.*`, which every loader of a base
/// model skips), and the tokenizer's vocabulary file with a
/// tokenizer_config.json that records its real lower-casing (save_tokenizer()). Checkpoints (model,
/// AdamW moments, RNG states, data position) make a resumed run end with the same weights as an
/// uninterrupted one on CPU. Beside the model, metrics.jsonl holds one JSON object per event,
/// written as it happens: "train" every `log_every` steps (step, epoch, loss, lr, examples_per_s;
/// loss_scale and skipped_steps with fp16's loss scaling), "eval" (step, held_out_loss), and
/// "resume" or "branch" (step; from) where a run continues a checkpoint, the events after that
/// checkpoint's step dropped so that each step appears once.
PretrainResult pretrain_mlm(const BertConfig& config, const std::vector<std::string>& lines,
                            const Tokenizer& tokenizer, const std::string& output_dir,
                            const PretrainOptions& options);

}  // namespace adaptertune
