#include "adaptertune/training/scheduler.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "adaptertune/error.h"

namespace adaptertune {

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "linear") return ScheduleKind::kLinear;
  if (name == "cosine") return ScheduleKind::kCosine;
  if (name == "constant") return ScheduleKind::kConstant;
  throw Error("unknown learning-rate schedule \"" + name +
              "\" (expected linear, cosine or constant)");
}

std::string schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kLinear:
      return "linear";
    case ScheduleKind::kCosine:
      return "cosine";
    case ScheduleKind::kConstant:
      return "constant";
  }
  return "linear";
}

void LrSchedule::validate() const {
  if (!(peak_lr > 0)) throw Error("learning rate must be positive, got " + std::to_string(peak_lr));
  if (warmup_steps < 0 || total_steps < 1) {
    throw Error("schedule needs warmup_steps >= 0 and total_steps >= 1");
  }
}

LrSchedule LrSchedule::with_warmup_ratio(ScheduleKind kind, double peak_lr, int64_t total_steps,
                                         double warmup_ratio) {
  if (!(warmup_ratio >= 0 && warmup_ratio <= 1)) {
    throw Error("warmup ratio must be in [0, 1], got " + std::to_string(warmup_ratio));
  }
  LrSchedule schedule;
  schedule.kind = kind;
  schedule.peak_lr = peak_lr;
  schedule.total_steps = total_steps;
  schedule.warmup_steps =
      static_cast<int64_t>(std::round(warmup_ratio * static_cast<double>(total_steps)));
  schedule.validate();
  return schedule;
}

double LrSchedule::lr_at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) {
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  if (kind == ScheduleKind::kConstant) return peak_lr;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double progress = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  if (kind == ScheduleKind::kCosine) return peak_lr * 0.5 * (1.0 + std::cos(M_PI * progress));
  return peak_lr * (1.0 - progress);
}

}  // namespace adaptertune
