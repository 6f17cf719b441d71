#include "adaptertune/training/scheduler.h"

#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

TEST(LrSchedule, WarmupThenDecay) {
  LrSchedule s;
  s.peak_lr = 1.0;
  s.warmup_steps = 4;
  s.total_steps = 14;
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.lr_at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(9), 0.5);
  EXPECT_DOUBLE_EQ(s.lr_at(14), 0.0);
  s.kind = ScheduleKind::kCosine;
  EXPECT_NEAR(s.lr_at(9), 0.5, 1e-12);
  s.kind = ScheduleKind::kConstant;
  EXPECT_DOUBLE_EQ(s.lr_at(13), 1.0);
  EXPECT_ERROR_CONTAINS(parse_schedule("step"),
                        "unknown learning-rate schedule \"step\" (expected linear, cosine, "
                        "constant or wsd)");
  EXPECT_EQ(parse_schedule(schedule_name(ScheduleKind::kCosine)), ScheduleKind::kCosine);

  // The warmup share rounds to the nearest step: 0.29 x 100 is 28.999... in binary.
  EXPECT_EQ(LrSchedule::with_warmup_ratio(ScheduleKind::kLinear, 1e-3, 100, 0.29).warmup_steps, 29);
  EXPECT_EQ(LrSchedule::with_warmup_ratio(ScheduleKind::kCosine, 1e-3, 2000, 0.06).warmup_steps,
            120);
  EXPECT_ERROR_CONTAINS(LrSchedule::with_warmup_ratio(ScheduleKind::kLinear, 1e-3, 10, 1.5),
                        "warmup ratio must be in [0, 1], got 1.5");
  EXPECT_ERROR_CONTAINS(LrSchedule::with_warmup_ratio(ScheduleKind::kLinear, 1e-3, 0, 0.1),
                        "total_steps >= 1");
}

TEST(LrSchedule, WarmupStableDecayHoldsThePeakThenDecaysOverItsLastSteps) {
  const LrSchedule s = LrSchedule::make(ScheduleKind::kWarmupStableDecay, 1.0, 20,
                                        /*warmup_ratio=*/0.5, /*warmup_steps=*/2,
                                        /*decay_steps=*/4);
  EXPECT_EQ(s.warmup_steps, 2) << "the steps, not the ratio";
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.5);
  EXPECT_DOUBLE_EQ(s.lr_at(1), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(15), 1.0);  // the last stable step
  EXPECT_DOUBLE_EQ(s.lr_at(16), 1.0);  // the decay starts from the peak ...
  EXPECT_DOUBLE_EQ(s.lr_at(18), 0.5);
  EXPECT_DOUBLE_EQ(s.lr_at(19), 0.25);
  EXPECT_DOUBLE_EQ(s.lr_at(20), 0.0);  // ... and reaches 0 at the end
  EXPECT_EQ(parse_schedule("wsd"), ScheduleKind::kWarmupStableDecay);
  EXPECT_EQ(schedule_name(ScheduleKind::kWarmupStableDecay), "wsd");
  EXPECT_EQ(schedule_names(), (std::vector<std::string>{"linear", "cosine", "constant", "wsd"}));

  // By default the decay is the last 10 % of the steps, and other kinds have none.
  EXPECT_EQ(
      LrSchedule::with_warmup_ratio(ScheduleKind::kWarmupStableDecay, 1.0, 95, 0.0).decay_steps,
      10);
  EXPECT_EQ(
      LrSchedule::with_warmup_ratio(ScheduleKind::kWarmupStableDecay, 1.0, 3, 0.0).decay_steps, 1);
  EXPECT_EQ(LrSchedule::make(ScheduleKind::kLinear, 1.0, 10, 0.0, -1, 4).decay_steps, 0);

  EXPECT_ERROR_CONTAINS(
      LrSchedule::make(ScheduleKind::kWarmupStableDecay, 1.0, 10, 0.0, /*warmup_steps=*/7, 4),
      "decay_steps must be at least 1 and, with warmup_steps (7), at most total_steps (10); "
      "got 4");
  EXPECT_ERROR_CONTAINS(LrSchedule::make(ScheduleKind::kConstant, 1.0, 10, 0.0, 11, 0),
                        "warmup_steps (11) exceed total_steps (10)");
  EXPECT_ERROR_CONTAINS(LrSchedule::make(ScheduleKind::kLinear, 1.0, 10, 0.0, -1, -1),
                        "decay_steps must be >= 0");
}

TEST(LrSchedule, AWsdRunCanGrowWhileItsDecayHasNotBegun) {
  const auto wsd = [](int64_t total) {
    return LrSchedule::make(ScheduleKind::kWarmupStableDecay, 1e-3, total, 0.0, 100, 50);
  };
  // A run of 1,000 steps and one of 10,000 agree on every step before the shorter one decays
  // (its decay's first step, 950, still runs at the peak).
  EXPECT_EQ(wsd(1000).first_difference(wsd(10000), 951), -1);
  EXPECT_EQ(wsd(1000).first_difference(wsd(10000), 1000), 951);
  // A warmup given as a ratio moves with the total, and so does a linear decay.
  const auto ratio = [](int64_t total) {
    return LrSchedule::with_warmup_ratio(ScheduleKind::kConstant, 1e-3, total, 0.1);
  };
  EXPECT_EQ(ratio(1000).first_difference(ratio(2000), 500), 0);
  const auto linear = [](int64_t total) {
    return LrSchedule::with_warmup_ratio(ScheduleKind::kLinear, 1e-3, total, 0.0);
  };
  EXPECT_EQ(linear(1000).first_difference(linear(2000), 10), 1);
  EXPECT_EQ(linear(1000).first_difference(linear(1000), 1000), -1);
}

TEST(LrSchedule, RoundTripsThroughJsonAndRefusesBadRecords) {
  const LrSchedule s =
      LrSchedule::make(ScheduleKind::kWarmupStableDecay, 3e-4, 80000, 0.0, 1000, 8000);
  const LrSchedule back = LrSchedule::from_json(s.to_json(), "state.json");
  EXPECT_EQ(back.kind, s.kind);
  EXPECT_EQ(back.peak_lr, s.peak_lr) << "exactly: a resume compares rates exactly";
  EXPECT_EQ(back.warmup_steps, 1000);
  EXPECT_EQ(back.total_steps, 80000);
  EXPECT_EQ(back.decay_steps, 8000);
  EXPECT_EQ(s.describe(), "wsd, peak 0.0003, warmup 1000, decay 8000 of 80000 steps");
  EXPECT_EQ(LrSchedule::from_json(
                LrSchedule::with_warmup_ratio(ScheduleKind::kCosine, 1e-4, 10, 0.2).to_json(), "x")
                .describe(),
            "cosine, peak 0.0001, warmup 2 of 10 steps");

  EXPECT_ERROR_CONTAINS(LrSchedule::from_json(R"({"kind": "step", "peak_lr": 1, "warmup_steps": 0,
                                                   "total_steps": 4})",
                                              "state.json"),
                        "state.json: key 'kind' must be linear, cosine, constant or wsd");
  EXPECT_ERROR_CONTAINS(LrSchedule::from_json(R"({"kind": "linear", "peak_lr": 1})", "state.json"),
                        "state.json");
  EXPECT_ERROR_CONTAINS(LrSchedule::from_json(R"({"kind": "linear", "peak_lr": 1, "warmup_steps": 0,
                                "total_steps": 4, "warmpu": 1})",
                                              "state.json"),
                        "warmpu");
  EXPECT_ERROR_CONTAINS(LrSchedule::from_json(R"({"kind": "wsd", "peak_lr": 1, "warmup_steps": 0,
                                                   "total_steps": 4})",
                                              "state.json"),
                        "state.json: schedule wsd: decay_steps must be at least 1");
  EXPECT_ERROR_CONTAINS(LrSchedule::from_json("[1]", "state.json"),
                        "state.json: the schedule is not a JSON object");
}

}  // namespace
}  // namespace adaptertune
