#include "adaptertune/device.h"

#include <torch/cuda.h>

#include "adaptertune/error.h"

namespace adaptertune {

void check_device(c10::Device device) {
  if (device.is_cpu()) return;
  if (!device.is_cuda()) {
    throw Error("device " + device.str() + " is not supported (expected cpu or cuda)");
  }
  if (!torch::cuda::is_available()) {
    throw Error("device " + device.str() +
                ": CUDA is not available (this build of LibTorch or this machine has no GPU)");
  }
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  if (device.has_index() && device.index() >= count) {
    throw Error("device " + device.str() + ": this machine has " + std::to_string(count) +
                " GPU(s), cuda:0 to cuda:" + std::to_string(count - 1));
  }
}

c10::Device parse_device(const std::string& name) {
  if (name == "auto") {
    return torch::cuda::is_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  }
  const std::string expected = " (expected cpu, cuda, cuda:N or auto)";
  if (name != "cpu" && name != "cuda" && name.rfind("cuda:", 0) != 0) {
    throw Error("unknown device \"" + name + "\"" + expected);
  }
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(name);
  } catch (const c10::Error&) {
    throw Error("unknown device \"" + name + "\"" + expected);
  }
  check_device(device);
  return device;
}

}  // namespace adaptertune
