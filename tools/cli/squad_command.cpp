#include "squad_command.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "adaptertune/adapters/adapter_fusion.h"
#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/device.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/inference/predictor.h"
#include "adaptertune/inference/prepare_for_inference.h"
#include "adaptertune/io/adapter_pack.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/io/hf_checkpoint.h"
#include "adaptertune/io/tokenizer_files.h"
#include "adaptertune/layers/linear.h"  // the cover's destructor
#include "adaptertune/runtime.h"
#include "adaptertune/training/interrupt.h"
#include "adaptertune/training/question_answering_trainer.h"

namespace adaptertune::cli {
namespace {

// The windows and answer options: each flag given, else what `qa` says (a span pack's, else the
// library's defaults).
QuestionAnsweringOptions qa_options(const QuestionAnsweringOverrides& choice,
                                    QuestionAnsweringOptions recorded) {
  const QuestionAnsweringOptions qa = choice.applied_to(std::move(recorded));
  try {
    qa.features.validate();
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " (the flags: --max-length, --max-query-length)");
  }
  return qa;
}

// The span model for eval and predict: the model directory with its packs (their span heads),
// the settings the last pack was trained with unless the command line says otherwise, and the
// group of processes it runs in when one is asked for.
struct SquadModel {
  BertForQuestionAnswering model{nullptr};
  QuestionAnsweringOptions qa;
  Precision precision = Precision::kFloat32;
  c10::Device device = c10::kCPU;
  std::shared_ptr<ProcessGroup> group;  // null: alone
  // set_up_for_inference()'s cover of the prepacked bf16 weights, for the command's life.
  std::unique_ptr<FrozenLinearWeightsPrepacked> prepacked;
};

// The settings are checked before the processes meet (they fail alike everywhere, and a mistake
// is named as in one process); the model loads after.
SquadModel open_squad_model(const SquadUseRequest& r) {
  // One pack with a span head, and the packs of the adapters it was trained stacked on or, for
  // a fusion, fuses.
  std::vector<AdapterPackInfo> infos;
  for (const auto& pack : r.adapter_packs) infos.push_back(read_adapter_pack_info(pack));
  std::optional<size_t> span;
  for (size_t i = 0; i < infos.size(); ++i) {
    if (!infos[i].span_head) continue;
    if (span) {
      throw Error("--task squad runs one span pack (a span model has one span head): " +
                  r.adapter_packs[*span] + " and " + r.adapter_packs[i] + " both have one");
    }
    span = i;
  }
  if (!infos.empty() && !span) {
    throw Error((infos.size() == 1 ? r.adapter_packs.front() + ": the pack has"
                                   : std::string("none of the --adapter-pack packs has")) +
                " a span head (question answering); train one with train --task squad");
  }
  SquadModel out;
  std::optional<AdapterPackInfo> info;
  if (span) {
    info = infos[*span];
    const std::vector<std::string> trained = info->trained_stack();
    for (size_t i = 0; i < infos.size(); ++i) {
      if (i != *span && std::count(trained.begin(), trained.end(), infos[i].name) == 0 &&
          std::count(info->fused.begin(), info->fused.end(), infos[i].name) == 0) {
        const std::string fused = info->fusion ? " and fuses (" + joined(info->fused) + ")" : "";
        throw Error(r.adapter_packs[i] + ": --task squad runs the span pack " +
                    r.adapter_packs[*span] + " on the packs it was trained stacked on (" +
                    (info->stacked_on.empty() ? std::string("none") : joined(info->stacked_on)) +
                    ")" + fused + "; this pack's adapter " + infos[i].name + " is none of them");
      }
    }
    check_packs_below(*info, r.adapter_packs[*span], infos);
    check_fused_adapters(infos, r.adapter_packs);
  }
  const BertConfig base = BertConfig::from_file(r.model + "/config.json");
  // The flags where given, else what the span pack records, else what the model directory
  // records (a span model kept by train --train full), else SQuAD's settings.
  const RecordedRun recorded =
      recorded_run(r.model, info ? &*info : nullptr, span ? r.adapter_packs[*span] : std::string(),
                   r.max_length);
  out.qa = qa_options(r.squad, recorded.record.span_options(base, r.max_length));
  base.check_sequence_length(out.qa.features.max_length, recorded.length_source);
  out.device = parse_device(r.device);
  std::vector<std::string> warnings;
  out.precision = use_precision(r.precision, recorded.record.precision, out.device, warnings);
  out.group = join_group(r.distributed, out.device, r.device);
  for (const auto& w : warnings) warn(w);
  LoadReport report;
  out.model = load_bert_for_question_answering(r.model, &report);
  if (info) {
    // The packs below first (their adapters only: the span head is the span pack's).
    for (size_t i : pack_load_order(infos)) {
      AdapterPackLoad load = load_adapter_pack(out.model, r.adapter_packs[i], std::nullopt,
                                               /*load_head=*/i == *span);
      for (const auto& w : load.warnings) warn(w);
    }
    out.model->bert->set_active_stack(Stack(info->trained_stack()));
  } else if (report.missing_any(ParameterGroup::kHead)) {
    warn(r.model + " has no span head (qa_outputs); answers come from an untrained head");
  }
  // As a Predictor runs its model: no cast of every weight on every batch, the same outputs.
  out.prepacked = set_up_for_inference(*out.model, out.device, out.precision);
  return out;
}

}  // namespace

void add_squad_options(CLI::App* cmd, QuestionAnsweringOverrides& choice, bool from_pack) {
  const std::string group = "SQuAD (--task squad)";
  const QuestionAnsweringOptions defaults;
  const auto by_default = [from_pack](const auto& value) {
    std::ostringstream text;
    text << value;
    return std::string(from_pack ? " (default: the span pack's, else " : " (default: ") +
           text.str() + ")";
  };
  cmd->add_option("--doc-stride", choice.doc_stride,
                  std::string("SQuAD: context tokens between the starts of two windows over a long "
                              "context (default: ") +
                      (from_pack ? "the span pack's, at the length it records; else " : "") +
                      "a third of --max-length: 128 for 384, 42 for 128)")
      ->check(integer_range(1))
      ->group(group);
  cmd->add_option("--max-query-length", choice.max_query_length,
                  std::string("SQuAD: question tokens kept (default: ") +
                      (from_pack ? "the span pack's, at the length it records; else " : "") +
                      "64, at most half of --max-length: 64 for 384 and 128, 32 for 64)")
      ->check(integer_range(1))
      ->group(group);
  cmd->add_option(
         "--n-best", choice.n_best,
         "SQuAD: best starts and ends considered per window" + by_default(defaults.answers.n_best))
      ->check(integer_range(1))
      ->group(group);
  cmd->add_option(
         "--max-answer-length", choice.max_answer_length,
         "SQuAD: longest answer, in tokens" + by_default(defaults.answers.max_answer_length))
      ->check(integer_range(1))
      ->group(group);
  cmd->add_option("--null-score-threshold", choice.null_score_threshold,
                  "SQuAD v2.0: answer nothing when the null score beats the best span by more" +
                      by_default(defaults.answers.null_score_threshold))
      ->group(group);
}

void refuse_squad_flags(const QuestionAnsweringOverrides& choice, const std::string& command) {
  std::vector<std::string> given;
  if (choice.doc_stride) given.push_back("--doc-stride");
  if (choice.max_query_length) given.push_back("--max-query-length");
  if (choice.n_best) given.push_back("--n-best");
  if (choice.max_answer_length) given.push_back("--max-answer-length");
  if (choice.null_score_threshold) given.push_back("--null-score-threshold");
  if (!given.empty()) {
    throw Error(command + ": " + joined(given) + (given.size() == 1 ? " is" : " are") +
                " for questions answered from a context (--task squad, or span packs' JSON "
                "lines)");
  }
}

void refuse_squad_flags_without_spans(const QuestionAnsweringOverrides& choice,
                                      const Predictor& predictor, const std::string& command) {
  const std::vector<std::string> tasks = predictor.tasks();
  if (predictor.base_info().span_head ||
      std::any_of(tasks.begin(), tasks.end(), [&predictor](const std::string& task) {
        return predictor.task_info(task).span_head;
      })) {
    return;
  }
  refuse_squad_flags(choice, command + " with no span pack or span model");
}

bool is_squad_task(const std::string& name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower == "squad";
}

int run_train_squad(SquadTrainRequest r) {
  r.trainer.max_length = max_length_for(r.model, r.max_length, kSquadMaxLength);
  QuestionAnsweringOptions defaults;  // SQuAD's, in windows of that length
  defaults.features.max_length = r.trainer.max_length;
  const QuestionAnsweringOptions qa = qa_options(r.squad, defaults);
  const FreezePolicy& requested = r.requested;
  // A fusion trains in place of a new adapter, named by the adapters it fuses.
  const std::optional<AdapterConfig> adapter =
      r.fusion ? std::nullopt : resolve_adapter(r.adapter, requested.mode);
  const std::string adapter_name =
      r.fusion ? fusion_name(r.fused) : r.adapter_name.value_or("squad");
  const std::optional<std::string> trained =
      adapter || r.fusion ? std::optional<std::string>(adapter_name) : std::nullopt;
  check_adapter_for_policy(requested, r.train, trained, r.adapter_name);
  check_recompute_for_policy(requested, r.train, r.trainer.gradient_checkpointing,
                             r.trainer.recompute_attention_probabilities);
  r.trainer.inputs = {r.model, r.train_file, r.dev_file, r.adapter.config_file};
  r.trainer.inputs.insert(r.trainer.inputs.end(), r.adapter_packs.begin(), r.adapter_packs.end());
  r.trainer.base_model_dir = r.model;
  r.trainer.validate();
  // Data-parallel: join the group once the options every process shares have been checked (they
  // fail alike everywhere), before the run directory is (only rank 0 looks at it).
  r.trainer.process_group = join_group(r.distributed, r.trainer.device, r.device_flag);
  const bool main_process = speaks_for_group();
  Trainer::check_options(r.trainer);
  // The data before the model, so that a malformed file costs no time.
  SquadDataset train = first_examples(read_squad(r.train_file), r.train_examples);
  SquadDataset dev = read_squad(r.dev_file);
  set_seed(r.trainer.seed);
  auto tokenizer = load_tokenizer(r.model);
  LoadReport report;
  BertForQuestionAnswering model = r.random_init
                                       ? init_bert_for_question_answering(r.model)
                                       : load_bert_for_question_answering(r.model, &report);
  if (main_process) report_base(r.model, r.random_init, report);
  // The packs' adapters are frozen tasks of their own, below the new one or fused by it.
  for (const auto& pack : r.adapter_packs) {
    AdapterPackLoad load = load_adapter_pack(model, pack, std::nullopt, /*load_head=*/false);
    for (const auto& w : load.warnings) warn(w);
  }
  if (adapter) model->bert->add_adapter(adapter_name, *adapter);
  if (r.fusion) model->bert->add_fusion(r.fused, *r.fusion);
  const FreezePolicy policy = resolve_policy(requested, r.train, *model->bert);
  if (main_process) {
    const std::string processes =
        r.trainer.process_group ? ", " + std::to_string(r.trainer.process_group->world_size()) +
                                      " processes (" + r.trainer.process_group->backend() + ")"
                                : "";
    const std::string adapter_text =
        trained ? Stack::on_top_of(r.stacked_on, adapter_name).describe() : "none";
    std::fprintf(stderr, "train: squad (%s), %zu train / %zu dev questions, adapter %s%s\n",
                 train.v2 ? "v2.0" : "v1.1", train.examples.size(), dev.examples.size(),
                 adapter_text.c_str(), processes.c_str());
  }
  TrainResult result;
  {
    StopOnInterrupt ctrl_c;
    TrainerOptions options = r.trainer;
    options.max_length = 0;  // the windows' length, from qa
    QuestionAnsweringTrainer trainer(model, std::move(train), std::move(dev), policy, trained,
                                     options, qa, *tokenizer, r.stacked_on);
    result = trainer.train();
  }
  const nlohmann::ordered_json out = {
      {"task", "squad"},
      {"best_step", result.best_step},
      {"dev", result.best_metrics},
      {"best_model", result.best_model ? nlohmann::ordered_json(*result.best_model) : nullptr},
      {"seconds", result.seconds},
      {"interrupted", result.interrupted}};
  if (main_process) std::cout << json_text(out) << std::endl;
  return result.interrupted ? 130 : 0;
}

int run_eval_squad(const SquadUseRequest& r) {
  const SquadDataset data = read_squad(r.file);  // a malformed file costs no model load
  SquadModel m = open_squad_model(r);
  auto tokenizer = load_tokenizer(r.model);
  const SquadEvalResult eval = evaluate_squad(m.model, data, *tokenizer, m.qa, r.batch_size,
                                              m.device, m.precision, m.group.get());
  if (!speaks_for_group()) return 0;  // rank 0 prints
  nlohmann::ordered_json out = {{"task", "squad"}};
  out.update(active_task_json(*m.model->bert));
  out.update({{"split", r.file},
              {"examples", data.examples.size()},
              {"max_length", m.qa.features.max_length},
              {"doc_stride", m.qa.features.stride()},
              {"max_query_length", m.qa.features.query_length()},
              {"n_best", m.qa.answers.n_best},
              {"max_answer_length", m.qa.answers.max_answer_length},
              {"null_score_threshold", m.qa.answers.null_score_threshold},
              {"allow_no_answer", m.qa.answers.for_data(data).allow_no_answer},
              {"precision", precision_name(m.precision)},
              {"metrics", eval.metrics}});
  std::cout << json_text(out) << std::endl;
  return 0;
}

int run_predict_squad(const SquadUseRequest& r) {
  const SquadDataset data = read_squad(r.file);
  SquadModel m = open_squad_model(r);
  auto tokenizer = load_tokenizer(r.model);
  const auto predicted = predict_squad(m.model, data, *tokenizer, m.qa, r.batch_size, m.device,
                                       m.precision, m.group.get());
  if (!speaks_for_group()) return 0;  // rank 0 writes
  nlohmann::ordered_json answers = nlohmann::ordered_json::object();
  for (const SquadExample& example : data.examples)
    answers[example.id] = predicted.at(example.id).text;
  const std::string text = json_text(answers, 2) + "\n";
  if (r.out.empty()) {
    std::cout << text << std::flush;
  } else {
    write_file_atomic(r.out, text);
  }
  return 0;
}

}  // namespace adaptertune::cli
