#include "adaptertune/training/scheduler.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <optional>
#include <sstream>
#include <utility>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "json_util.h"

namespace adaptertune {
namespace {

constexpr std::pair<ScheduleKind, const char*> kScheduleNames[] = {
    {ScheduleKind::kLinear, "linear"},
    {ScheduleKind::kCosine, "cosine"},
    {ScheduleKind::kConstant, "constant"},
    {ScheduleKind::kWarmupStableDecay, "wsd"},
};

/// The schedule named `name`, or nothing when no schedule has that name.
std::optional<ScheduleKind> find_schedule(const std::string& name) {
  for (const auto& [kind, known] : kScheduleNames) {
    if (name == known) return kind;
  }
  return std::nullopt;
}

/// "linear, cosine, constant or wsd": the names for an error message, from the one list.
std::string expected_schedule_names() {
  std::string joined;
  const std::size_t count = std::size(kScheduleNames);
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) joined += i + 1 == count ? " or " : ", ";
    joined += kScheduleNames[i].second;
  }
  return joined;
}

}  // namespace

ScheduleKind parse_schedule(const std::string& name) {
  if (const auto kind = find_schedule(name)) return *kind;
  throw Error("unknown learning-rate schedule \"" + name + "\" (expected " +
              expected_schedule_names() + ")");
}

std::string schedule_name(ScheduleKind kind) {
  for (const auto& [known, name] : kScheduleNames) {
    if (kind == known) return name;
  }
  return "linear";
}

std::vector<std::string> schedule_names() {
  std::vector<std::string> names;
  for (const auto& entry : kScheduleNames) names.emplace_back(entry.second);
  return names;
}

void LrSchedule::validate() const {
  if (!(peak_lr > 0)) throw Error("learning rate must be positive, got " + format_number(peak_lr));
  if (warmup_steps < 0 || total_steps < 1) {
    throw Error("schedule needs warmup_steps >= 0 and total_steps >= 1");
  }
  if (warmup_steps > total_steps) {
    throw Error("schedule: warmup_steps (" + std::to_string(warmup_steps) +
                ") exceed total_steps (" + std::to_string(total_steps) + ")");
  }
  if (kind == ScheduleKind::kWarmupStableDecay &&
      (decay_steps < 1 || warmup_steps + decay_steps > total_steps)) {
    throw Error("schedule wsd: decay_steps must be at least 1 and, with warmup_steps (" +
                std::to_string(warmup_steps) + "), at most total_steps (" +
                std::to_string(total_steps) + "); got " + std::to_string(decay_steps));
  }
}

LrSchedule LrSchedule::with_warmup_ratio(ScheduleKind kind, double peak_lr, int64_t total_steps,
                                         double warmup_ratio) {
  return make(kind, peak_lr, total_steps, warmup_ratio, /*warmup_steps=*/-1, /*decay_steps=*/0);
}

LrSchedule LrSchedule::make(ScheduleKind kind, double peak_lr, int64_t total_steps,
                            double warmup_ratio, int64_t warmup_steps, int64_t decay_steps) {
  if (!(warmup_ratio >= 0 && warmup_ratio <= 1)) {
    throw Error("warmup ratio must be in [0, 1], got " + format_number(warmup_ratio));
  }
  if (decay_steps < 0) {
    throw Error("schedule: decay_steps must be >= 0 (0: the default), got " +
                std::to_string(decay_steps));
  }
  const auto share = [&](double ratio) {
    return static_cast<int64_t>(std::round(ratio * static_cast<double>(total_steps)));
  };
  LrSchedule schedule;
  schedule.kind = kind;
  schedule.peak_lr = peak_lr;
  schedule.total_steps = total_steps;
  schedule.warmup_steps = warmup_steps >= 0 ? warmup_steps : share(warmup_ratio);
  if (kind == ScheduleKind::kWarmupStableDecay) {
    schedule.decay_steps =
        decay_steps > 0 ? decay_steps : std::max<int64_t>(1, share(kDefaultDecayRatio));
  }
  schedule.validate();
  return schedule;
}

double LrSchedule::lr_at(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) {
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  if (kind == ScheduleKind::kConstant) return peak_lr;
  if (kind == ScheduleKind::kWarmupStableDecay) {
    const int64_t decay_start = total_steps - decay_steps;
    if (step < decay_start) return peak_lr;
    const double progress = static_cast<double>(step - decay_start) /
                            static_cast<double>(std::max<int64_t>(1, decay_steps));
    return peak_lr * (1.0 - std::min(progress, 1.0));
  }
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double progress = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  if (kind == ScheduleKind::kCosine) return peak_lr * 0.5 * (1.0 + std::cos(M_PI * progress));
  return peak_lr * (1.0 - progress);
}

int64_t LrSchedule::first_difference(const LrSchedule& other, int64_t steps) const {
  for (int64_t step = 0; step < steps; ++step) {
    if (lr_at(step) != other.lr_at(step)) return step;
  }
  return -1;
}

std::string LrSchedule::describe() const {
  std::ostringstream out;
  out << schedule_name(kind) << ", peak " << peak_lr << ", warmup " << warmup_steps;
  if (kind == ScheduleKind::kWarmupStableDecay) out << ", decay " << decay_steps;
  out << " of " << total_steps << " steps";
  return out.str();
}

std::string LrSchedule::to_json() const {
  detail::Json json = {{"kind", schedule_name(kind)},
                       {"peak_lr", peak_lr},
                       {"warmup_steps", warmup_steps},
                       {"total_steps", total_steps}};
  if (kind == ScheduleKind::kWarmupStableDecay) json["decay_steps"] = decay_steps;
  return json_text(json);
}

LrSchedule LrSchedule::from_json(const std::string& json, const std::string& source) {
  const detail::Json parsed = detail::parse_json(json, source);
  if (!parsed.is_object()) throw Error(source + ": the schedule is not a JSON object");
  detail::JsonObjectReader reader(parsed, source);
  reader.require({"kind", "peak_lr", "warmup_steps", "total_steps"});
  LrSchedule schedule;
  std::string kind;
  reader.read("kind", kind);
  const std::optional<ScheduleKind> known = find_schedule(kind);
  if (!known) reader.fail("kind", expected_schedule_names());
  schedule.kind = *known;
  reader.read("peak_lr", schedule.peak_lr);
  reader.read("warmup_steps", schedule.warmup_steps);
  reader.read("total_steps", schedule.total_steps);
  if (reader.has("decay_steps")) reader.read("decay_steps", schedule.decay_steps);
  reader.finish();
  try {
    schedule.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return schedule;
}

}  // namespace adaptertune
