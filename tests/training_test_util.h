#pragma once
// Options of the short training runs the trainer tests make: two epochs of batches of 16 at a
// learning rate that moves a tiny model visibly, quiet, in a fresh run directory.

#include <string>

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

}  // namespace adaptertune::testing
