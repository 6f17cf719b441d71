#pragma once
/// @file scheduler.h
/// Learning-rate schedules.

#include <cstdint>
#include <string>

namespace adaptertune {

/// How the learning rate decays after the warmup.
enum class ScheduleKind {
  kLinear,    ///< linearly to 0 at the last step
  kCosine,    ///< half a cosine, to 0 at the last step
  kConstant,  ///< stays at the peak
};

/// "linear", "cosine" or "constant"; throws Error naming the value otherwise.
ScheduleKind parse_schedule(const std::string& name);
std::string schedule_name(ScheduleKind kind);

/// The learning rate as a function of the step: linear warmup from 0 over `warmup_steps`, then
/// the decay `kind` says, reaching 0 at `total_steps` (except kConstant).
struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kLinear;
  double peak_lr = 1e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  /// A validated schedule whose warmup is `warmup_ratio` of `total_steps`, rounded to the nearest
  /// step (so that 0.29 x 100 is 29 steps, not the 28 that truncating 28.999… would give).
  static LrSchedule with_warmup_ratio(ScheduleKind kind, double peak_lr, int64_t total_steps,
                                      double warmup_ratio);

  /// Learning rate for optimizer step `step` (0-based).
  double lr_at(int64_t step) const;
  /// Checks the learning rate and step counts; throws Error naming the bad value.
  void validate() const;
};

}  // namespace adaptertune
