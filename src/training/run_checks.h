#pragma once
// What the trainers and pretrain_mlm() check before a run, and how they fingerprint their data
// for resume: one rule each, so that they report ranges and refuse checkpoints alike.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adaptertune/text/tokenizer.h"

namespace adaptertune {
class BertModelImpl;
}  // namespace adaptertune

namespace adaptertune::detail {

/// Error "OWNER: OPTION must be an integer >= MIN, got VALUE" unless value >= min.
void check_at_least(const char* owner, const char* option, int64_t value, int64_t min);
/// Error unless `value` is finite and >= min (> min when `exclusive`).
void check_finite(const char* owner, const char* option, double value, double min,
                  bool exclusive = false);
/// Error unless `value` is in [0, 1].
void check_fraction(const char* owner, const char* option, double value);
/// Whether `value` can be a loss scale: 2^k for an integer k >= 0, by which dividing rounds
/// nothing (TrainingEngineOptions::initial_loss_scale, and the scale a checkpoint holds).
bool valid_loss_scale(double value);

/// An adapter trained on top of others (TrainingTask::stacked_on, the QuestionAnsweringTrainer's
/// `stacked_on`): Error starting with `label` unless there is an `adapter` to train on top, no
/// adapter is named twice, every one below is one of `bert`'s adapters, and none of them is among
/// the adapters the run trains (`trained`): an adapter stacked on stays frozen.
void check_stacked_on(const BertModelImpl& bert, const std::optional<std::string>& adapter,
                      const std::vector<std::string>& stacked_on,
                      const std::vector<std::string>& trained, const std::string& label);

/// SHA-256 of the token ids of `encodings` with each one's length, for checkpoint fingerprints.
std::string encodings_sha256(const std::vector<Encoding>& encodings);

}  // namespace adaptertune::detail
