#include "adaptertune/device.h"

#include <torch/cuda.h>
#include <torch/nn/module.h>

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

void move_to_device(torch::nn::Module& module, c10::Device device) {
  auto there = [device](const at::Tensor& tensor) {
    return tensor.device().type() == device.type() &&
           (!device.has_index() || tensor.device().index() == device.index());
  };
  bool all_there = true;
  for (const at::Tensor& parameter : module.parameters()) all_there = all_there && there(parameter);
  for (const at::Tensor& buffer : module.buffers()) all_there = all_there && there(buffer);
  if (!all_there) module.to(device);
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
