#pragma once
/// @file scheduler.h
/// Learning-rate schedules.

#include <cstdint>
#include <string>
#include <vector>

namespace adaptertune {

/// How the learning rate decays after the warmup.
enum class ScheduleKind {
  kLinear,    ///< linearly to 0 at the last step
  kCosine,    ///< half a cosine, to 0 at the last step
  kConstant,  ///< stays at the peak
  /// Warmup, stable, decay: stays at the peak, then decays linearly to 0 over the last
  /// `decay_steps` steps. The rates before the decay do not depend on the total, so a run can be
  /// extended, or a short decay branched off any checkpoint of a long run (pretraining).
  kWarmupStableDecay,
};

/// "linear", "cosine", "constant" or "wsd"; throws Error naming the value otherwise.
ScheduleKind parse_schedule(const std::string& name);
std::string schedule_name(ScheduleKind kind);
/// Every name parse_schedule() accepts, for command-line checks and help.
std::vector<std::string> schedule_names();

/// The learning rate as a function of the step: linear warmup from 0 over `warmup_steps`, then
/// the decay `kind` says, reaching 0 at `total_steps` (except kConstant).
struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kLinear;
  double peak_lr = 1e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  /// kWarmupStableDecay only: the steps of the final decay (at least 1).
  int64_t decay_steps = 0;

  /// The share of the steps that kWarmupStableDecay decays over unless told otherwise.
  static constexpr double kDefaultDecayRatio = 0.1;

  /// A validated schedule whose warmup is `warmup_ratio` of `total_steps`, rounded to the nearest
  /// step (so that 0.29 x 100 is 29 steps, not the 28 that truncating 28.999… would give).
  static LrSchedule with_warmup_ratio(ScheduleKind kind, double peak_lr, int64_t total_steps,
                                      double warmup_ratio);
  /// As with_warmup_ratio(), with a warmup of `warmup_steps` steps instead when it is ≥ 0 (a run
  /// whose total may grow keeps its warmup), and, for kWarmupStableDecay, a decay of
  /// `decay_steps` steps (0: kDefaultDecayRatio of the total, rounded, at least 1).
  static LrSchedule make(ScheduleKind kind, double peak_lr, int64_t total_steps,
                         double warmup_ratio, int64_t warmup_steps, int64_t decay_steps);

  /// Learning rate for optimizer step `step` (0-based).
  double lr_at(int64_t step) const;
  /// Checks the learning rate and step counts; throws Error naming the bad value.
  void validate() const;

  /// The first of the steps 0 … `steps` - 1 at which this schedule and `other` give different
  /// learning rates, or -1 when they agree on all of them (a checkpoint at `steps` made under one
  /// can then continue under the other).
  int64_t first_difference(const LrSchedule& other, int64_t steps) const;
  /// "wsd, peak 0.0005, warmup 1000, decay 8000 of 80000 steps": for messages.
  std::string describe() const;
  /// JSON object (as checkpoints record it) and back; from_json() throws Error naming `source`
  /// and the key.
  std::string to_json() const;
  static LrSchedule from_json(const std::string& json, const std::string& source);
};

}  // namespace adaptertune
