#include "adaptertune/precision.h"

#include <optional>
#include <string>

#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

const c10::Device kCpu(c10::kCPU);
const c10::Device kCuda(c10::kCUDA, 0);

TEST(Precision, Fp16IsRefusedOnTheCpuOnly) {
  // A check of the device's type: it needs no GPU.
  for (const Precision precision : {Precision::kFloat32, Precision::kBFloat16}) {
    EXPECT_NO_THROW(check_precision(kCpu, precision));
    EXPECT_NO_THROW(check_precision(kCuda, precision));
  }
  EXPECT_NO_THROW(check_precision(kCuda, Precision::kFloat16));
  EXPECT_ERROR_CONTAINS(check_precision(kCpu, Precision::kFloat16),
                        "precision fp16 is not supported on the CPU");
  EXPECT_ERROR_CONTAINS(check_precision(c10::Device(c10::kMeta), Precision::kBFloat16),
                        "device meta is not supported");
  EXPECT_ERROR_CONTAINS(AutocastGuard(kCpu, Precision::kFloat16), "use bf16");
}

TEST(Precision, InferenceRunsWhatIsAskedElseWhatThePacksRecordWhereItCan) {
  std::string warning;
  EXPECT_EQ(inference_precision(std::nullopt, std::nullopt, kCpu, &warning), Precision::kFloat32);
  EXPECT_EQ(inference_precision(std::nullopt, Precision::kBFloat16, kCpu, &warning),
            Precision::kBFloat16);
  EXPECT_EQ(inference_precision(Precision::kFloat32, Precision::kBFloat16, kCpu, &warning),
            Precision::kFloat32);
  EXPECT_EQ(inference_precision(std::nullopt, Precision::kFloat16, kCuda, &warning),
            Precision::kFloat16);
  EXPECT_TRUE(warning.empty()) << warning;
  // Packs trained in fp16 on a GPU, run on the CPU: fp32, and a warning that says why.
  EXPECT_EQ(inference_precision(std::nullopt, Precision::kFloat16, kCpu, &warning),
            Precision::kFloat32);
  EXPECT_NE(warning.find("trained in fp16, which the CPU cannot run"), std::string::npos)
      << warning;
  EXPECT_EQ(inference_precision(std::nullopt, Precision::kFloat16, kCpu), Precision::kFloat32);
  // Asked for, it is the caller's to fix.
  EXPECT_ERROR_CONTAINS(inference_precision(Precision::kFloat16, std::nullopt, kCpu),
                        "fp16 is not supported on the CPU");
}

}  // namespace
}  // namespace adaptertune
