// `adaptertune train`, `eval` and `predict`: fine-tuning on a GLUE task and using the result.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "adaptertune/adapter_config.h"
#include "adaptertune/error.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/runtime.h"
#include "adaptertune/tasks/batcher.h"
#include "adaptertune/tasks/glue.h"
#include "adaptertune/training/trainer.h"
#include "commands.h"
#include "model_loading.h"

namespace adaptertune::cli {
namespace {

struct TrainCommandOptions {
  std::string task;
  std::string data_dir = "data/glue";
  std::string model;
  std::string adapter = "houlsby";
  std::optional<double> reduction_factor;
  std::optional<int64_t> adapter_size;
  std::string train = "adapters";
  std::optional<bool> train_pooler;
  int64_t max_length = 128;
  int64_t train_examples = 0;
  TrainerOptions trainer;
};

HeadConfig head_for(const GlueTaskInfo& task) {
  return task.regression() ? HeadConfig::regression() : HeadConfig::classification(task.labels);
}

GlueDataset subsample(GlueDataset data, int64_t n) {
  if (n > 0 && static_cast<int64_t>(data.examples.size()) > n)
    data.examples.resize(static_cast<size_t>(n));
  return data;
}

int run_train(TrainCommandOptions o) {
  const GlueTaskInfo& task = glue_task(o.task);
  o.trainer.device = resolve_device(o.trainer.device);
  // Before the model: the head, the adapters and a missing pooler are initialised from it.
  set_seed(o.trainer.seed);
  auto tokenizer = tokenizer_for_model(o.model);
  LoadReport report;
  BertForSequenceClassification model =
      load_bert_for_sequence_classification(o.model, head_for(task), &report);
  std::fprintf(stderr, "train: loaded %s: %s\n", o.model.c_str(), report.summary().c_str());
  std::optional<std::string> adapter_name;
  if (o.adapter != "none") {
    AdapterConfig config = AdapterConfig::preset(o.adapter);
    if (o.reduction_factor) config.reduction_factor = *o.reduction_factor;
    if (o.adapter_size) config.adapter_size = *o.adapter_size;
    adapter_name = task.name;
    std::replace(adapter_name->begin(), adapter_name->end(), '.', '_');
    model->bert->add_adapter(*adapter_name, config);
  } else if (o.train == "adapters" || o.train == "adapters-head") {
    throw Error("--train " + o.train + " needs an adapter (--adapter houlsby or pfeiffer)");
  }
  FreezePolicy policy = FreezePolicy::from_name(o.train);
  // A base whose pooler was never trained (e.g. pretrained by masked LM only) trains it unless
  // told otherwise.
  const bool pooler_missing =
      std::any_of(report.missing.begin(), report.missing.end(),
                  [](const std::string& n) { return n.find("pooler.") != std::string::npos; });
  policy.train_pooler = o.train_pooler.value_or(pooler_missing);

  auto train_data = subsample(read_glue(task, o.data_dir, "train"), o.train_examples);
  auto dev_data = read_glue(task, o.data_dir, "dev");
  EncodedDataset train = encode_glue(train_data, *tokenizer, o.max_length);
  EncodedDataset dev = encode_glue(dev_data, *tokenizer, o.max_length);
  std::fprintf(stderr,
               "train: %s, %zu train / %zu dev examples, adapter %s, training %s%s on %s (%s)\n",
               task.name.c_str(), train.encodings.size(), dev.encodings.size(), o.adapter.c_str(),
               policy.name().c_str(), policy.train_pooler ? " + pooler" : "",
               o.trainer.device.c_str(), o.trainer.precision.c_str());
  TrainResult result;
  {
    StopOnInterrupt ctrl_c;
    Trainer trainer(model, task, std::move(train), std::move(dev), policy, adapter_name, o.trainer,
                    tokenizer->pad_id());
    result = trainer.train();
  }
  nlohmann::ordered_json out = {
      {"task", task.name},          {"best_step", result.best_step},
      {"dev", result.best_metrics}, {"best_model", o.trainer.output_dir + "/best"},
      {"seconds", result.seconds},  {"interrupted", result.interrupted}};
  std::cout << out.dump() << std::endl;
  return result.interrupted ? 130 : 0;
}

struct UseOptions {
  std::string task;
  std::string data_dir = "data/glue";
  std::string model;
  std::string adapter_pack;
  std::string split = "dev";
  std::string input;
  std::string output_dir;
  std::string output_logits;
  int64_t max_length = 128;
  int64_t batch_size = 128;
  std::string device = "auto";
  std::string precision = "fp32";
};

// The model for eval/predict: a model directory, plus an adapter pack (with its head) if given.
BertForSequenceClassification load_for_use(const UseOptions& o, const GlueTaskInfo& task) {
  HeadConfig head = head_for(task);
  if (!o.adapter_pack.empty()) {
    AdapterPackInfo info = read_adapter_pack_info(o.adapter_pack);
    if (info.head) head = *info.head;
  }
  LoadReport report;
  BertForSequenceClassification model =
      load_bert_for_sequence_classification(o.model, head, &report);
  if (!o.adapter_pack.empty()) {
    AdapterPackLoad load = load_adapter_pack(model, o.adapter_pack);
    for (const auto& w : load.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    if (!load.head_loaded)
      std::fprintf(stderr, "warning: the adapter pack has no head; the head is untrained\n");
  } else if (std::any_of(report.missing.begin(), report.missing.end(),
                         [](const std::string& n) { return n.rfind("classifier.", 0) == 0; })) {
    std::fprintf(stderr,
                 "warning: %s has no classifier weights; predictions come from an untrained head\n",
                 o.model.c_str());
  }
  return model;
}

int run_eval(const UseOptions& o) {
  const GlueTaskInfo& task = glue_task(o.task);
  auto tokenizer = tokenizer_for_model(o.model);
  auto model = load_for_use(o, task);
  EncodedDataset data = encode_glue(read_glue(task, o.data_dir, o.split), *tokenizer, o.max_length);
  if (data.targets.empty())
    throw Error(task.name + " " + o.split + " has no labels to evaluate against");
  EvalResult r = evaluate(model, task, data, o.batch_size, resolve_device(o.device), o.precision,
                          tokenizer->pad_id());
  nlohmann::ordered_json out = {{"task", task.name},
                                {"split", o.split},
                                {"examples", data.encodings.size()},
                                {"loss", r.loss},
                                {"metrics", r.metrics}};
  std::cout << out.dump() << std::endl;
  return 0;
}

int run_predict(const UseOptions& o) {
  const GlueTaskInfo& task = glue_task(o.task);
  auto tokenizer = tokenizer_for_model(o.model);
  auto model = load_for_use(o, task);
  GlueDataset data;
  data.task = &task;
  if (!o.input.empty()) {
    data = read_glue_file(task, o.input);
  } else {
    // Lines of stdin: text, or text<TAB>text_pair for sentence-pair tasks.
    std::string line;
    for (int64_t n = 1; std::getline(std::cin, line); ++n) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      GlueExample e;
      e.index = n - 1;
      e.line = n;
      auto tab = line.find('\t');
      e.text_a = line.substr(0, tab);
      if (tab != std::string::npos) e.text_b = line.substr(tab + 1);
      if (task.sentence_pair && !e.text_b)
        throw Error("stdin:" + std::to_string(n) + ": " + task.name + " needs text<TAB>text_pair");
      data.examples.push_back(std::move(e));
    }
    data.path = "stdin";
  }
  if (data.examples.empty()) throw Error("predict: no input examples");
  EncodedDataset encoded = encode_glue(data, *tokenizer, o.max_length);
  EvalResult r = evaluate(model, task, encoded, o.batch_size, resolve_device(o.device), o.precision,
                          tokenizer->pad_id());
  if (!o.output_logits.empty()) {
    std::string text;
    for (const auto& row : r.logits) {
      for (size_t i = 0; i < row.size(); ++i) text += (i ? "\t" : "") + std::to_string(row[i]);
      text += "\n";
    }
    write_file_atomic(o.output_logits, text);
  }
  if (!o.output_dir.empty()) {
    std::cout << write_glue_submission(task, o.split == "dev" ? "test" : o.split, o.output_dir,
                                       encoded.indices, r.predictions)
              << std::endl;
    return 0;
  }
  for (double p : r.predictions) {
    if (task.regression()) {
      std::printf("%.4f\n", p);
    } else {
      std::printf("%s\n", task.labels.at(static_cast<size_t>(p)).c_str());
    }
  }
  return 0;
}

void add_use_options(CLI::App* cmd, UseOptions& o) {
  cmd->add_option("--task", o.task,
                  "GLUE task (SST-2, MRPC, RTE, CoLA, STS-B, QQP, MNLI, QNLI, WNLI, AX)")
      ->required();
  cmd->add_option("--model", o.model, "Model directory (config.json, model.safetensors, vocab.txt)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--adapter-pack", o.adapter_pack, "Adapter pack directory (e.g. a run's best/)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--max-length", o.max_length, "Tokens per example")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "Examples per batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--device", o.device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  cmd->add_option("--precision", o.precision, "fp32, bf16 or fp16")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
}

}  // namespace

Command add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainCommandOptions>();
  o->trainer.output_dir = "runs/train";
  o->trainer.device = "auto";
  CLI::App* cmd = app.add_subcommand(
      "train", "Fine-tune on a GLUE task (adapters by default); keeps the best model");
  cmd->add_option("--task", o->task, "GLUE task name")->required();
  cmd->add_option("--data-dir", o->data_dir, "Folder with <TASK>/train.tsv, dev.tsv")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
  cmd->add_option("--model", o->model, "Base model directory")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--adapter", o->adapter, "houlsby, pfeiffer or none")
      ->check(CLI::IsMember({"houlsby", "pfeiffer", "none"}))
      ->capture_default_str();
  auto* rf = cmd->add_option("--reduction-factor", o->reduction_factor, "Bottleneck m = hidden / N")
                 ->check(CLI::PositiveNumber);
  cmd->add_option("--adapter-size", o->adapter_size, "Bottleneck size m")
      ->check(CLI::PositiveNumber)
      ->excludes(rf);
  cmd->add_option("--train", o->train,
                  "adapters (+ LayerNorms + head), adapters-head, full or head")
      ->check(CLI::IsMember({"adapters", "adapters-head", "full", "head"}))
      ->capture_default_str();
  cmd->add_flag_function(
      "--train-pooler,!--no-train-pooler", [o](int64_t n) { o->train_pooler = n > 0; },
      "Train the pooler (default: when the base has no trained pooler)");
  cmd->add_option("--epochs", o->trainer.epochs, "Epochs")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-steps", o->trainer.max_steps,
                  "Stop after N optimizer steps (0: all epochs)")
      ->capture_default_str();
  cmd->add_option("--lr", o->trainer.lr, "Peak learning rate")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--batch-size", o->trainer.batch_size, "Examples per batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--gradient-accumulation", o->trainer.gradient_accumulation,
                  "Batches per optimizer step")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-length", o->max_length, "Tokens per example")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--schedule", o->trainer.schedule, "linear, cosine or constant")
      ->check(CLI::IsMember({"linear", "cosine", "constant"}))
      ->capture_default_str();
  cmd->add_option("--warmup-ratio", o->trainer.warmup_ratio, "Share of steps for warmup")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--weight-decay", o->trainer.weight_decay, "AdamW weight decay")
      ->capture_default_str();
  cmd->add_option("--max-grad-norm", o->trainer.max_grad_norm, "Gradient clipping (0: off)")
      ->capture_default_str();
  cmd->add_option("--eval-every", o->trainer.eval_every,
                  "Evaluate every N steps (0: each epoch end)")
      ->capture_default_str();
  cmd->add_option("--early-stopping", o->trainer.early_stopping_patience,
                  "Stop after N evaluations without improvement")
      ->capture_default_str();
  cmd->add_option("--train-examples", o->train_examples,
                  "Use only the first N training examples (0: all)")
      ->capture_default_str();
  cmd->add_option("--seed", o->trainer.seed, "Random seed")->capture_default_str();
  cmd->add_option("--device", o->trainer.device, "cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  cmd->add_option("--precision", o->trainer.precision, "fp32, bf16 or fp16")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}))
      ->capture_default_str();
  cmd->add_option("--out", o->trainer.output_dir, "Run directory")->capture_default_str();
  cmd->add_option("--log-every", o->trainer.log_every, "Log every N steps")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--resume", o->trainer.resume,
                "Continue from the run directory's newest checkpoint");
  cmd->add_flag_function(
      "--no-progress", [o](int64_t) { o->trainer.progress = false; }, "No progress output");
  cmd->add_flag_function(
      "--no-group-by-length", [o](int64_t) { o->trainer.group_by_length = false; },
      "Plain shuffled batches instead of length-grouped ones");
  return [o] { return run_train(*o); };
}

Command add_eval_command(CLI::App& app) {
  auto o = std::make_shared<UseOptions>();
  CLI::App* cmd =
      app.add_subcommand("eval", "Dev-set metrics (JSON on stdout) of a model and adapter pack");
  add_use_options(cmd, *o);
  cmd->add_option("--data-dir", o->data_dir, "GLUE data folder")
      ->check(CLI::ExistingDirectory)
      ->capture_default_str();
  cmd->add_option("--split", o->split, "Labelled split to evaluate")->capture_default_str();
  return [o] { return run_eval(*o); };
}

Command add_predict_command(CLI::App& app) {
  auto o = std::make_shared<UseOptions>();
  CLI::App* cmd =
      app.add_subcommand("predict", "Labels for a GLUE TSV (--input) or for lines on stdin");
  add_use_options(cmd, *o);
  cmd->add_option("--input", o->input, "GLUE TSV file (e.g. test.tsv)")->check(CLI::ExistingFile);
  cmd->add_option("--output-dir", o->output_dir,
                  "Write a GLUE submission file here instead of printing labels");
  cmd->add_option("--split", o->split,
                  "Split name for the submission file name (test, test_matched, ...)")
      ->capture_default_str();
  cmd->add_option("--output-logits", o->output_logits,
                  "Write one row of tab-separated logits per example");
  return [o] { return run_predict(*o); };
}

}  // namespace adaptertune::cli
