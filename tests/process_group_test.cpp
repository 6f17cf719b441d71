// The parts of data-parallel training one process can check: reading torchrun's and Slurm's
// environment, refusing bad options, a group of one, which must change nothing, and evaluations
// shared out in a group of two threads (the test of several processes training is
// tests/distributed/, ctest label `distributed`).

#include "adaptertune/distributed/process_group.h"

#include <cstdlib>
#include <map>

#include <ATen/CPUGeneratorImpl.h>

#include "adaptertune/bert_for_question_answering.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/tasks/glue.h"
#include "adaptertune/tasks/squad.h"
#include "adaptertune/text/wordpiece.h"
#include "adaptertune/training/pretraining.h"
#include "adaptertune/training/question_answering_trainer.h"
#include "adaptertune/training/trainer.h"
#include "group_test_util.h"
#include "test_util.h"
#include "training_test_util.h"

namespace adaptertune {
namespace {

const char* kVariables[] = {"RANK",         "WORLD_SIZE",    "LOCAL_RANK",
                            "MASTER_ADDR",  "MASTER_PORT",   "SLURM_NTASKS",
                            "SLURM_PROCID", "SLURM_LOCALID", "TORCHELASTIC_USE_AGENT_STORE"};

// Sets the given variables for the test's duration, all others of kVariables unset.
class Environment {
 public:
  using Values = std::map<std::string, std::string>;
  explicit Environment(const Values& values) {
    for (const char* name : kVariables) {
      if (const char* value = std::getenv(name)) saved_[name] = value;
      ::unsetenv(name);
    }
    for (const auto& [name, value] : values) ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~Environment() {
    for (const char* name : kVariables) ::unsetenv(name);
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  std::map<std::string, std::string> saved_;
};

TEST(ProcessGroup, OptionsComeFromTorchrunsOrSlurmsEnvironment) {
  {
    Environment env(Environment::Values{{"RANK", "3"},
                                        {"WORLD_SIZE", "4"},
                                        {"LOCAL_RANK", "1"},
                                        {"MASTER_ADDR", "node7"},
                                        {"MASTER_PORT", "29511"},
                                        {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
    const DistributedOptions o = DistributedOptions::from_environment();
    EXPECT_EQ(o.rank, 3);
    EXPECT_EQ(o.world_size, 4);
    EXPECT_EQ(o.local_rank, 1);
    EXPECT_EQ(o.master_addr, "node7");
    EXPECT_EQ(o.master_port, 29511);
    EXPECT_TRUE(o.use_agent_store);
    EXPECT_TRUE(DistributedOptions::requested_by_environment());
  }
  {
    Environment env(
        Environment::Values{{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}});
    const DistributedOptions o = DistributedOptions::from_environment();
    EXPECT_EQ(o.rank, 5);
    EXPECT_EQ(o.world_size, 8);
    EXPECT_EQ(o.local_rank, 1);
    EXPECT_EQ(o.master_port, 29500);
    EXPECT_FALSE(o.use_agent_store);
  }
  {
    Environment env(
        Environment::Values{{"WORLD_SIZE", "1"}, {"SLURM_NTASKS", "4"}});  // torchrun's wins
    EXPECT_FALSE(DistributedOptions::requested_by_environment());
  }
  {
    Environment env(Environment::Values{});
    EXPECT_FALSE(DistributedOptions::requested_by_environment());
    EXPECT_EQ(DistributedOptions::from_environment().world_size, 1);
  }
}

TEST(ProcessGroup, BadEnvironmentAndOptionsAreRefusedByName) {
  {
    Environment env(Environment::Values{{"WORLD_SIZE", "two"}});
    EXPECT_ERROR_CONTAINS(DistributedOptions::from_environment(),
                          "environment variable WORLD_SIZE=two: expected an integer from 1 to");
  }
  {
    Environment env(Environment::Values{{"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}});
    EXPECT_ERROR_CONTAINS(DistributedOptions::from_environment(),
                          "MASTER_PORT=70000: expected an integer from 1 to 65535");
  }
  DistributedOptions o;
  o.world_size = 2;
  o.rank = 2;
  EXPECT_ERROR_CONTAINS(o.validate(), "rank 2 is not in [0, world_size 2)");
  o.rank = 0;
  o.init_method = "udp://x:1";
  EXPECT_ERROR_CONTAINS(o.validate(), "init_method udp://x:1: expected env://, tcp://HOST:PORT");
  o.init_method = "env://";
  o.backend = "mpi";
  EXPECT_ERROR_CONTAINS(o.validate(), "backend \"mpi\": expected auto, gloo or nccl");
  o.backend = "nccl";
  o.world_size = 1;
  EXPECT_ERROR_CONTAINS(ProcessGroup(o, c10::Device(c10::kCPU)), "nccl");
  o.backend = "gloo";
  o.init_method = "tcp://nowhere";
  EXPECT_ERROR_CONTAINS(ProcessGroup(o, c10::Device(c10::kCPU)),
                        "init_method tcp://nowhere: expected tcp://HOST:PORT");
  // A store file in a directory that does not exist: said at once, not after the timeout (the
  // short one here would give "could not join" instead).
  const std::string missing = testing::fresh_dir("no_such_store_dir") + "/";
  o.world_size = 2;
  o.timeout_seconds = 1;
  o.init_method = "file://" + missing + "store";
  EXPECT_ERROR_CONTAINS(
      ProcessGroup(o, c10::Device(c10::kCPU)),
      "init_method file://" + missing + "store: directory " + missing + " does not exist");
}

std::shared_ptr<ProcessGroup> group_of_one(const std::string& name,
                                           int64_t bucket_bytes = int64_t{25} << 20) {
  DistributedOptions o;
  o.bucket_bytes = bucket_bytes;
  o.init_method = "file://" + testing::fresh_dir(name);
  o.backend = "gloo";
  return std::make_shared<ProcessGroup>(o, c10::Device(c10::kCPU));
}

using testing::in_group_of_two;

TEST(ProcessGroup, AGroupOfOneSumsAndBroadcastsToItself) {
  // 40-byte buckets: the float tensors go in several, the double one in its own.
  auto group = group_of_one("group_of_one", 40);
  EXPECT_EQ(group->world_size(), 1);
  EXPECT_TRUE(group->is_main());
  EXPECT_EQ(group->backend(), "gloo");
  torch::manual_seed(1);
  std::vector<at::Tensor> tensors = {torch::randn({3, 4}), torch::randn({7}),
                                     torch::randn({2}, torch::kDouble), torch::randn({5, 5})};
  std::vector<at::Tensor> before;
  for (const auto& t : tensors) before.push_back(t.clone());
  group->all_reduce_sum(tensors);
  group->broadcast(tensors);
  group->barrier();
  for (size_t i = 0; i < tensors.size(); ++i) EXPECT_TRUE(torch::equal(tensors[i], before[i]));
}

// The training losses a run of testing::short_run_options(name) logged in metrics.jsonl.
std::vector<double> logged_losses(const std::string& name) {
  std::vector<double> out;
  std::istringstream lines(read_file(::testing::TempDir() + "adaptertune_" + name + "_" +
                                     std::to_string(::getpid()) + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    const size_t at = line.find("\"loss\":");
    if (line.find("\"event\":\"train\"") != std::string::npos && at != std::string::npos) {
      out.push_back(std::stod(line.substr(at + 7)));
    }
  }
  return out;
}

// Through a group of one, training takes the data-parallel path (slices, the all-reduce of
// gradients with the "no gradient anywhere keeps none" rule, losses summed in the same
// all-reduce) and must end bit for bit where it ends without a group. Two tasks, so that a
// wrongly materialised zero gradient of the idle task (decayed by AdamW) would show.
TEST(ProcessGroup, TrainingInAGroupOfOneEqualsTrainingAlone) {
  const std::string data_dir = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";
  WordPieceTokenizer tokenizer(data_dir + "/vocab/bert-base-uncased-vocab.txt");
  auto encode = [&](const std::string& task, const std::string& split, size_t n) {
    TextDataset data = read_glue(glue_task(task), data_dir + "/glue", split);
    data.examples.resize(n);
    return encode_examples(data, tokenizer, 32);
  };
  auto make = [&] {
    torch::manual_seed(8);
    BertConfig config = testing::tiny_config();
    config.vocab_size = 30522;
    BertForSequenceClassification model(config, HeadConfig::classification({"0", "1"}));
    model->add_task("sst2", AdapterConfig::houlsby(), HeadConfig::classification({"0", "1"}));
    model->add_task("rte", AdapterConfig::houlsby(),
                    HeadConfig::classification(glue_task("RTE").labels));
    return model;
  };
  auto train = [&](BertForSequenceClassification& model, std::shared_ptr<ProcessGroup> group,
                   const std::string& name) {
    TrainerOptions o = testing::short_run_options(name);
    o.weight_decay = 0.1;
    o.log_every = 1;
    o.process_group = std::move(group);
    std::vector<TrainingTask> tasks;
    tasks.push_back({glue_task("SST-2"),
                     encode("SST-2", "train", 48),
                     encode("SST-2", "dev", 16),
                     std::string("sst2"),
                     {}});
    tasks.push_back({glue_task("RTE"),
                     encode("RTE", "train", 32),
                     encode("RTE", "dev", 16),
                     std::string("rte"),
                     {}});
    return Trainer(model, std::move(tasks), FreezePolicy{}, o, tokenizer).train();
  };
  auto alone = make();
  const TrainResult a = train(alone, nullptr, "group_alone");
  auto grouped = make();
  const TrainResult b = train(grouped, group_of_one("group_store"), "group_grouped");
  EXPECT_EQ(a.steps, b.steps);
  const auto left = alone->named_parameters(), right = grouped->named_parameters();
  for (const auto& item : left) {
    EXPECT_TRUE(torch::equal(item.value(), right[item.key()])) << item.key() << " differs";
  }
  // The losses logged come through the all-reduce too.
  EXPECT_FALSE(logged_losses("group_alone").empty());
  EXPECT_EQ(logged_losses("group_alone"), logged_losses("group_grouped"));
}

// The SQuAD sample the span tests run on, and windows short enough to give it several.
SquadDataset squad_sample() {
  return read_squad(std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/squad/dev-v1.1.json");
}

QuestionAnsweringOptions short_windows() {
  QuestionAnsweringOptions qa;
  qa.features.max_length = 48;
  qa.features.doc_stride = 12;
  qa.features.max_query_length = 12;
  return qa;
}

// A span run (SQuAD) in a group of one takes the data-parallel path as well (slices, the loss
// weighted by its share, gradients and loss in one all-reduce, rank 0's early-stopping decision
// broadcast) and must end bit for bit where it ends alone.
TEST(ProcessGroup, SpanTrainingInAGroupOfOneEqualsTrainingAlone) {
  const std::string data_dir = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";
  WordPieceTokenizer tokenizer(data_dir + "/vocab/bert-base-uncased-vocab.txt");
  const SquadDataset data = squad_sample();
  const QuestionAnsweringOptions qa = short_windows();
  auto make = [] {
    torch::manual_seed(7);
    BertConfig config = testing::tiny_config();
    config.vocab_size = 30522;
    BertForQuestionAnswering model(config);
    model->bert->add_adapter("squad", AdapterConfig::houlsby());
    return model;
  };
  auto train = [&](BertForQuestionAnswering& model, std::shared_ptr<ProcessGroup> group,
                   const std::string& name) {
    TrainerOptions o = testing::short_run_options(name);
    o.batch_size = 4;
    o.epochs = 2;
    o.eval_batch_size = 8;
    o.gradient_accumulation = 2;
    o.log_every = 1;
    o.process_group = std::move(group);
    return QuestionAnsweringTrainer(model, data, data, FreezePolicy{}, "squad", o, qa, tokenizer)
        .train();
  };
  auto alone = make();
  const TrainResult a = train(alone, nullptr, "span_alone");
  auto grouped = make();
  const TrainResult b = train(grouped, group_of_one("span_group_store"), "span_grouped");
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.best_metrics, b.best_metrics);
  const auto left = alone->named_parameters(), right = grouped->named_parameters();
  for (const auto& item : left) {
    EXPECT_TRUE(torch::equal(item.value(), right[item.key()])) << item.key() << " differs";
  }
  EXPECT_FALSE(logged_losses("span_alone").empty());
  EXPECT_EQ(logged_losses("span_alone"), logged_losses("span_grouped"));
}

// An evaluation shared out in a group (each process runs every second batch, the logits summed
// over the group) gives every process exactly what one process computes: the predictions,
// logits, loss and metrics of a classification task and of a regression task, and SQuAD's
// answers. A row computed by both processes, or by neither, would come out doubled or zero.
TEST(ProcessGroup, EvaluationSharedOutInAGroupOfTwoEqualsEvaluationAlone) {
  const std::string data_dir = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";
  WordPieceTokenizer tokenizer(data_dir + "/vocab/bert-base-uncased-vocab.txt");
  BertConfig config = testing::tiny_config();
  config.vocab_size = 30522;
  for (const std::string task_name : {"SST-2", "STS-B"}) {
    SCOPED_TRACE(task_name);
    const GlueTaskInfo& task = glue_task(task_name);
    TextDataset dev = read_glue(task, data_dir + "/glue", "dev");
    dev.examples.resize(37);  // five batches of 8, the last short: 3 on rank 0, 2 on rank 1
    const EncodedDataset data = encode_examples(dev, tokenizer, 32);
    auto make = [&] {
      torch::manual_seed(3);
      return BertForSequenceClassification(config, task.regression()
                                                       ? HeadConfig::regression()
                                                       : HeadConfig::classification(task.labels));
    };
    auto alone = make();
    const EvalResult expected =
        evaluate(alone, task, data, 8, torch::kCPU, Precision::kFloat32, tokenizer.pad_id());
    std::vector<BertForSequenceClassification> models = {make(), make()};
    EvalResult got[2];
    in_group_of_two("shared_eval_" + task_name, [&](ProcessGroup& group) {
      got[group.rank()] = evaluate(models[static_cast<size_t>(group.rank())], task, data, 8,
                                   torch::kCPU, Precision::kFloat32, tokenizer.pad_id(), &group);
    });
    for (const EvalResult& result : got) {
      EXPECT_EQ(result.predictions, expected.predictions);
      EXPECT_TRUE(result.logits == expected.logits);
      EXPECT_EQ(result.loss, expected.loss);
      EXPECT_EQ(result.metrics, expected.metrics);
    }
  }

  const SquadDataset squad = squad_sample();
  const QuestionAnsweringOptions qa = short_windows();
  const SquadFeatures features = make_squad_features(squad, tokenizer, qa.features);
  // Batches of two windows: at least two batches for each rank.
  ASSERT_GT(features.features.size(), 2u * 3) << "too few windows for batches on both ranks";
  auto make = [&] {
    torch::manual_seed(4);
    return BertForQuestionAnswering(config);
  };
  auto alone = make();
  const SquadEvalResult expected = evaluate_squad(alone, squad, features, tokenizer, qa.answers, 2,
                                                  torch::kCPU, Precision::kFloat32);
  std::vector<BertForQuestionAnswering> models = {make(), make()};
  SquadEvalResult got[2];
  in_group_of_two("shared_squad_eval", [&](ProcessGroup& group) {
    got[group.rank()] =
        evaluate_squad(models[static_cast<size_t>(group.rank())], squad, features, tokenizer,
                       qa.answers, 2, torch::kCPU, Precision::kFloat32, &group);
  });
  for (const SquadEvalResult& result : got) {
    EXPECT_EQ(result.metrics, expected.metrics);
    ASSERT_EQ(result.answers.size(), expected.answers.size());
    for (const auto& [id, answer] : expected.answers) {
      const SquadAnswerPrediction& other = result.answers.at(id);
      EXPECT_EQ(other.text, answer.text) << id;
      EXPECT_EQ(other.score, answer.score) << id;
      EXPECT_EQ(other.null_score, answer.null_score) << id;
      EXPECT_EQ(other.n_best, answer.n_best) << id;
    }
  }
}

// Pretraining in a group of one takes the data-parallel path (each batch masked whole, then
// sliced; the loss weighted by its share of the masked tokens; gradients, loss and held-out sums
// all-reduced; dropout from the process's own stream, the masking's random numbers restored after
// it). With dropout off it must write the model one process writes, bit for bit. With dropout on
// it takes another path than one process (its own dropout stream), and leaves the masking's
// generator where a run without dropout leaves it: what keeps a group's processes in step.
TEST(ProcessGroup, PretrainingInAGroupOfOneEqualsPretrainingAlone) {
  const std::string data_dir = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/../../data";
  WordPieceTokenizer tokenizer(data_dir + "/vocab/bert-base-uncased-vocab.txt");
  BertConfig config = testing::tiny_config();
  config.vocab_size = tokenizer.vocab_size();
  const BertConfig with_dropout = config;
  config.hidden_dropout_prob = 0;
  config.attention_probs_dropout_prob = 0;
  ASSERT_GT(with_dropout.hidden_dropout_prob, 0);
  std::vector<std::string> lines;
  for (int i = 0; i < 10; ++i) {
    lines.push_back("the quick brown fox jumps over the lazy dog number " + std::to_string(i));
  }
  const std::string root = testing::fresh_dir("pretrain_group");
  auto run = [&](const BertConfig& model_config, std::shared_ptr<ProcessGroup> group,
                 const std::string& name) {
    PretrainOptions options;
    options.steps = 5;
    options.batch_size = 4;
    options.max_length = 16;
    options.gradient_accumulation = 2;
    options.eval_lines = {"a lazy dog sleeps in the sun", "the brown fox runs over the hill"};
    options.process_group = std::move(group);
    const PretrainResult result =
        pretrain_mlm(model_config, lines, tokenizer, root + "/" + name, options);
    return std::make_pair(result, at::detail::getDefaultCPUGenerator().get_state());
  };
  const auto [alone, alone_rng] = run(config, nullptr, "alone");
  const auto [grouped, grouped_rng] = run(config, group_of_one("pretrain_group_store"), "grouped");
  EXPECT_EQ(alone.steps, grouped.steps);
  EXPECT_EQ(alone.final_loss, grouped.final_loss);
  ASSERT_TRUE(alone.eval_loss && grouped.eval_loss);
  EXPECT_EQ(*alone.eval_loss, *grouped.eval_loss);
  // (Compared as booleans: a failure would print megabytes of weights.)
  EXPECT_TRUE(read_file(root + "/alone/model.safetensors") ==
              read_file(root + "/grouped/model.safetensors"));

  const auto [dropped_alone, dropped_alone_rng] = run(with_dropout, nullptr, "dropout_alone");
  const auto [dropped, dropped_rng] =
      run(with_dropout, group_of_one("pretrain_group_dropout_store"), "dropout_grouped");
  // Alone and in a group, dropout draws from a stream of its own, and the masking's generator
  // is where it would be without dropout…
  EXPECT_TRUE(torch::equal(dropped_alone_rng, alone_rng))
      << "dropout alone moved the masking's random numbers";
  EXPECT_TRUE(torch::equal(dropped_rng, alone_rng))
      << "dropout in a group moved the masking's random numbers";
  // …so that a group drops as one process does: the same model, and not the one without dropout.
  EXPECT_EQ(dropped_alone.final_loss, dropped.final_loss);
  EXPECT_TRUE(read_file(root + "/dropout_grouped/model.safetensors") ==
              read_file(root + "/dropout_alone/model.safetensors"));
  EXPECT_FALSE(read_file(root + "/dropout_alone/model.safetensors") ==
               read_file(root + "/alone/model.safetensors"));
  remove_tree(root);
}

}  // namespace
}  // namespace adaptertune
