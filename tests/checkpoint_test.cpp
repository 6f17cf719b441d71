#include "adaptertune/training/checkpoint.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/training/freeze_policy.h"
#include "test_util.h"

#include <nlohmann/json.hpp>

namespace adaptertune {
namespace {

std::string fresh_root(const std::string& name) {
  std::string dir =
      ::testing::TempDir() + "adaptertune_ckpt_" + name + "_" + std::to_string(::getpid());
  remove_tree(dir);
  return dir;
}

struct TrainingRun {
  BertForSequenceClassification model{nullptr};
  std::unique_ptr<AdamW> optimizer;
};

// The same frozen base every time (seeded), adapters trained with dropout on.
TrainingRun make_run(const std::string& policy = "adapters") {
  torch::manual_seed(5);
  TrainingRun run;
  run.model = BertForSequenceClassification(testing::tiny_config(), HeadConfig{});
  run.model->bert->add_adapter("task", AdapterConfig::houlsby());
  const FreezePolicy freeze = FreezePolicy::from_name(policy);
  if (freeze.mode == TrainMode::kFull) {
    apply_freeze_policy(*run.model, freeze);
  } else {
    prepare_task_training(*run.model, "task", freeze);
  }
  run.model->train();
  AdamWOptions options;
  options.lr = 1e-2;
  run.optimizer = std::make_unique<AdamW>(weight_decay_groups(*run.model, 0.01), options);
  return run;
}

std::vector<std::pair<torch::Tensor, torch::Tensor>> batches() {
  torch::manual_seed(77);
  std::vector<std::pair<torch::Tensor, torch::Tensor>> out;
  for (int i = 0; i < 6; ++i) {
    out.emplace_back(torch::randint(1, 120, {4, 10}, torch::kLong),
                     torch::randint(0, 2, {4}, torch::kLong));
  }
  return out;
}

void train_step(TrainingRun& run, const std::pair<torch::Tensor, torch::Tensor>& batch) {
  run.optimizer->zero_grad();
  run.model->loss(run.model(batch.first), batch.second).backward();
  run.optimizer->step();
}

TEST(Checkpoint, ResumeIsBitIdenticalToAnUninterruptedRunOnCpu) {
  const auto data = batches();
  const std::string root = fresh_root("resume");
  TrainingRun uninterrupted = make_run();
  CheckpointManager manager(root);
  for (int step = 0; step < 6; ++step) {
    train_step(uninterrupted, data[step]);
    if (step == 2) {
      TrainingState state;
      state.global_step = 3;
      state.batch_in_epoch = 3;
      state.data_seed = 77;
      state.extra_json = R"({"best_accuracy": 0.5})";
      manager.save(*uninterrupted.model, *uninterrupted.optimizer, state);
    }
  }
  TrainingRun resumed = make_run();
  torch::manual_seed(12345);  // disturb the RNG: the checkpoint must restore it
  auto latest = manager.latest();
  ASSERT_TRUE(latest.has_value());
  TrainingState state = CheckpointManager::load(*latest, *resumed.model, *resumed.optimizer);
  EXPECT_EQ(state.global_step, 3);
  EXPECT_EQ(state.batch_in_epoch, 3);
  EXPECT_EQ(state.data_seed, 77u);
  EXPECT_EQ(state.extra_json, R"({"best_accuracy":0.5})");
  for (int step = state.batch_in_epoch; step < 6; ++step) train_step(resumed, data[step]);
  auto expected = uninterrupted.model->named_parameters();
  for (const auto& item : resumed.model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), expected[item.key()])) << item.key();
  }
}

TEST(Checkpoint, KeepsTheNewestAndPointsAtTheLatest) {
  const std::string root = fresh_root("keep");
  TrainingRun run = make_run();
  CheckpointManager manager(root, /*keep=*/2);
  EXPECT_FALSE(manager.latest().has_value());
  for (int64_t step : {10, 20, 30, 40}) {
    TrainingState state;
    state.global_step = step;
    manager.save(*run.model, *run.optimizer, state);
  }
  EXPECT_EQ(manager.latest(), root + "/checkpoint-40");
  EXPECT_FALSE(file_exists(root + "/checkpoint-10/trainer_state.json"));
  EXPECT_FALSE(file_exists(root + "/checkpoint-20/trainer_state.json"));
  EXPECT_TRUE(file_exists(root + "/checkpoint-30/trainer_state.json"));
  EXPECT_EQ(read_file(root + "/latest"), "checkpoint-40\n");
}

TEST(Checkpoint, KilledWriterLeavesThePreviousCheckpointLoadable) {
  const std::string root = fresh_root("killed");
  // Full fine-tuning of a wider model makes a checkpoint of some megabytes: slow enough to kill.
  torch::manual_seed(5);
  BertConfig config = testing::tiny_config();
  config.vocab_size = 3000;
  config.hidden_size = 128;
  BertForSequenceClassification model(config, HeadConfig{});
  apply_freeze_policy(*model, FreezePolicy::from_name("full"));
  AdamW optimizer(weight_decay_groups(*model, 0.0), AdamWOptions{});
  CheckpointManager manager(root);
  TrainingState state;
  state.global_step = 1;
  manager.save(*model, optimizer, state);
  // Each writer is killed once its temporary directory exists, in the middle of the save; one
  // that finished first legitimately becomes the latest checkpoint.
  int64_t previous_step = 1;
  int killed_mid_write = 0;
  for (int round = 0; round < 4; ++round) {
    const int64_t step = 2 + round;
    const std::string temp = testing::kill_writer_mid_write(
        [&] {
          TrainingState next;
          next.global_step = step;
          manager.save(*model, optimizer, next);
        },
        root, ".tmp-checkpoint-");
    if (!temp.empty()) ++killed_mid_write;
    auto latest = manager.latest();
    ASSERT_TRUE(latest.has_value()) << "after round " << round;
    TrainingState loaded;
    EXPECT_NO_THROW(loaded = CheckpointManager::load(*latest, *model, optimizer))
        << *latest << " after round " << round;
    EXPECT_TRUE(loaded.global_step == previous_step || (temp.empty() && loaded.global_step == step))
        << "step " << loaded.global_step << " after round " << round
        << (temp.empty() ? " (writer finished)" : " (killed mid-write in " + temp + ")");
    previous_step = loaded.global_step;
  }
  EXPECT_GE(killed_mid_write, 1);
}

TEST(Checkpoint, MismatchedModelIsRefusedAndLeftUnchanged) {
  const std::string root = fresh_root("mismatch");
  TrainingRun run = make_run("adapters");
  CheckpointManager manager(root);
  manager.save(*run.model, *run.optimizer, TrainingState{});
  TrainingRun other = make_run("adapters-head");  // no trainable LayerNorms
  auto before = other.model->named_parameters();
  std::map<std::string, torch::Tensor> copy;
  for (const auto& item : before) copy[item.key()] = item.value().clone();
  EXPECT_ERROR_CONTAINS(CheckpointManager::load(*manager.latest(), *other.model, *other.optimizer),
                        "is not a trainable parameter of this model (was it trained with "
                        "another freeze policy, adapter or fusion config?)");
  for (const auto& item : other.model->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), copy[item.key()])) << item.key();
  }
  EXPECT_ERROR_CONTAINS(CheckpointManager::load(root + "/nothing", *run.model, *run.optimizer),
                        "trainer_state.json: cannot open");
}

// A trainer_state.json that lacks any one field is refused with the field named, before the
// model, the optimizer's state or its learning rate change.
TEST(Checkpoint, StateLackingAFieldIsRefusedBeforeAnythingChanges) {
  const std::string root = fresh_root("fields");
  TrainingRun run = make_run();
  train_step(run, batches()[0]);  // non-trivial moments and step counts
  CheckpointManager manager(root);
  TrainingState state;
  state.global_step = 1;
  const std::string dir = manager.save(*run.model, *run.optimizer, state);
  const std::string path = dir + "/trainer_state.json";
  const auto complete = nlohmann::json::parse(read_file(path));

  TrainingRun other = make_run();
  other.optimizer->set_lr(0.123);
  std::map<std::string, torch::Tensor> before;
  for (const auto& item : other.model->named_parameters())
    before[item.key()] = item.value().clone();
  for (const std::string field :
       {"global_step", "epoch", "batch_in_epoch", "data_seed", "scheduler", "extra", "optimizer",
        "optimizer.lr", "optimizer.steps"}) {
    auto broken = complete;
    const auto dot = field.find('.');
    if (dot == std::string::npos) {
      broken.erase(field);
    } else {
      broken[field.substr(0, dot)].erase(field.substr(dot + 1));
    }
    write_file_atomic(path, broken.dump());
    EXPECT_ERROR_CONTAINS(CheckpointManager::load(dir, *other.model, *other.optimizer),
                          "'" + field.substr(dot == std::string::npos ? 0 : dot + 1) + "'");
    EXPECT_DOUBLE_EQ(other.optimizer->lr(), 0.123) << field;
    for (const auto& item : other.model->named_parameters()) {
      EXPECT_TRUE(torch::equal(item.value(), before[item.key()])) << field << ": " << item.key();
    }
  }
  // Wrong types are named too, and a state file that is not JSON at all.
  auto wrong = complete;
  wrong["epoch"] = "three";
  write_file_atomic(path, wrong.dump());
  EXPECT_ERROR_CONTAINS(CheckpointManager::load(dir, *other.model, *other.optimizer),
                        "key 'epoch' must be an integer");
  write_file_atomic(path, "{\"global_step\": ");
  EXPECT_ERROR_CONTAINS(CheckpointManager::load(dir, *other.model, *other.optimizer),
                        "trainer_state.json: invalid JSON");
  EXPECT_DOUBLE_EQ(other.optimizer->lr(), 0.123);
}

TEST(Checkpoint, OutOfRangeValuesAreRefusedNamingTheKey) {
  const std::string root = fresh_root("ranges");
  TrainingRun run = make_run();
  train_step(run, batches()[0]);
  CheckpointManager manager(root);
  TrainingState state;
  state.global_step = 1;
  state.batch_in_epoch = 1;
  const std::string dir = manager.save(*run.model, *run.optimizer, state);
  const std::string path = dir + "/trainer_state.json";
  const auto complete = nlohmann::json::parse(read_file(path));
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"batch_in_epoch", -5}, {"global_step", -1}, {"epoch", -1}, {"data_seed", -1}};
  for (const auto& [key, value] : cases) {
    auto broken = complete;
    broken[key] = value;
    write_file_atomic(path, broken.dump());
    EXPECT_ERROR_CONTAINS(CheckpointManager::read_state(dir), "key '" + key + "'");
  }
  auto broken = complete;
  broken["optimizer"]["lr"] = -1.0;
  write_file_atomic(path, broken.dump());
  EXPECT_ERROR_CONTAINS(CheckpointManager::load(dir, *run.model, *run.optimizer), "key 'lr'");
  broken = complete;
  broken["optimizer"]["steps"][0][0] = 99;  // more AdamW steps than the run took
  write_file_atomic(path, broken.dump());
  EXPECT_ERROR_CONTAINS(CheckpointManager::load(dir, *run.model, *run.optimizer), "key 'steps'");
}

TEST(Checkpoint, PositionIsCheckedAgainstTheRunsData) {
  DataShape shape;
  shape.batches_per_epoch = 10;
  shape.gradient_accumulation = 2;  // 5 steps per epoch
  shape.data_seed = 42;
  TrainingState state;
  state.data_seed = 42;
  state.epoch = 1;
  state.batch_in_epoch = 4;
  state.global_step = 7;
  EXPECT_NO_THROW(CheckpointManager::check_position(state, "ckpt", shape));
  state.batch_in_epoch = 11;
  EXPECT_ERROR_CONTAINS(CheckpointManager::check_position(state, "ckpt", shape),
                        "ckpt/trainer_state.json: key 'batch_in_epoch': 11 is beyond");
  state.batch_in_epoch = 4;
  state.global_step = 9;
  EXPECT_ERROR_CONTAINS(CheckpointManager::check_position(state, "ckpt", shape),
                        "key 'global_step': 9 does not fit epoch 1, batch 4");
  state.global_step = 7;
  state.epoch = int64_t{1} << 60;  // would overflow the step arithmetic
  EXPECT_ERROR_CONTAINS(CheckpointManager::check_position(state, "ckpt", shape), "key 'epoch'");
  state.epoch = 1;
  state.data_seed = 7;
  EXPECT_ERROR_CONTAINS(CheckpointManager::check_position(state, "ckpt", shape),
                        "key 'data_seed': 7 is not this run's seed 42");
  // Pretraining skips batches with nothing masked: fewer steps than batches is a valid position.
  state.data_seed = 42;
  state.global_step = 5;
  shape.batches_may_skip_steps = true;
  EXPECT_NO_THROW(CheckpointManager::check_position(state, "ckpt", shape));
  shape.batches_may_skip_steps = false;
  EXPECT_ERROR_CONTAINS(CheckpointManager::check_position(state, "ckpt", shape), "global_step");
}

TEST(Checkpoint, LatestPointerStaysInsideItsDirectory) {
  const std::string root = fresh_root("pointer");
  TrainingRun run = make_run();
  CheckpointManager manager(root);
  TrainingState state;
  state.global_step = 3;
  manager.save(*run.model, *run.optimizer, state);
  // A copy of the checkpoint outside the run, which a crafted pointer could lead to.
  const std::string outside = root + "-outside";
  remove_tree(outside);
  CheckpointManager(outside).save(*run.model, *run.optimizer, state);
  for (const std::string& pointer :
       std::vector<std::string>{"../" + outside.substr(outside.rfind('/') + 1) + "/checkpoint-3",
                                "/etc", "checkpoint-3/../../x", "checkpoint-", "best"}) {
    write_file_atomic(root + "/latest", pointer + "\n");
    EXPECT_ERROR_CONTAINS(manager.latest(), root + "/latest: names");
  }
  write_file_atomic(root + "/latest", "checkpoint-9\n");  // dangling: the newest complete one
  EXPECT_EQ(manager.latest().value(), root + "/checkpoint-3");
  remove_tree(outside);
}

TEST(Checkpoint, StaleTemporariesOfDeadWritersAreRemoved) {
  const std::string root = fresh_root("stale");
  make_directories(root + "/.tmp-checkpoint-4-999999999");  // no such process
  make_directories(root + "/.tmp-checkpoint-5-garbage");
  make_directories(root + "/.tmp-checkpoint-6-1");  // pid 1 runs: a live writer is spared
  CheckpointManager manager(root);
  manager.remove_stale_temporaries();
  std::vector<std::string> left;
  if (DIR* dir = ::opendir(root.c_str())) {
    while (dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] == '.' && std::string(entry->d_name).size() > 2) {
        left.push_back(entry->d_name);
      }
    }
    ::closedir(dir);
  }
  EXPECT_EQ(left, std::vector<std::string>{".tmp-checkpoint-6-1"});
}

}  // namespace
}  // namespace adaptertune
