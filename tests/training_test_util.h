#pragma once
// Options of the short training runs the trainer tests make: two epochs of batches of 16 at a
// learning rate that moves a tiny model visibly, quiet, in a fresh run directory; and the model
// the frozen-layer cache's tests train.

#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "adaptertune/adapter_config.h"
#include "adaptertune/bert_config.h"
#include "adaptertune/bert_for_sequence_classification.h"
#include "adaptertune/head_config.h"
#include "adaptertune/training/trainer.h"
#include "test_util.h"

namespace adaptertune::testing {

/// TrainerOptions for a short test run in fresh_dir(`name`).
inline TrainerOptions short_run_options(const std::string& name) {
  TrainerOptions o;
  o.epochs = 2;
  o.batch_size = 16;
  o.lr = 5e-3;
  o.progress = false;
  o.output_dir = fresh_dir(name);
  return o;
}

/// The frozen-layer cache's test model: a classifier of `config` (a tiny one, with or without
/// dropout) with the BERT vocabulary and three layers, head {"0", "1"}, made after seeding with
/// `seed`.
inline BertForSequenceClassification three_layer_classifier(BertConfig config, uint64_t seed) {
  torch::manual_seed(seed);
  config.vocab_size = 30522;
  config.num_hidden_layers = 3;
  return BertForSequenceClassification(config, HeadConfig::classification({"0", "1"}));
}

/// A Houlsby adapter in the last of three layers only: layers 0 and 1, left out, are what the
/// frozen-layer cache keeps.
inline AdapterConfig adapter_above_two_layers() {
  AdapterConfig adapter = AdapterConfig::houlsby();
  adapter.leave_out = {0, 1};
  return adapter;
}

}  // namespace adaptertune::testing
