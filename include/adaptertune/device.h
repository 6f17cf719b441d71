#pragma once
/// @file device.h
/// Naming the device a model runs on.

#include <string>

#include <c10/core/Device.h>

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace adaptertune {

/// "cpu", "cuda", "cuda:N" or "auto" (the first GPU when LibTorch sees one, else the CPU), as the
/// command-line tool and the examples accept it. Throws Error naming the value when it is none
/// of these or names a device this process cannot use (see check_device()).
c10::Device parse_device(const std::string& name);

/// Throws Error when `device` cannot be used here: CUDA without a GPU (or a CPU-only LibTorch),
/// a GPU index beyond the devices present, or a device type other than CPU and CUDA.
void check_device(c10::Device device);

/// Moves `module` to `device` (Module::to()) unless every parameter and buffer is there already
/// (`cuda` without an index: any GPU), so that a module already in place is left untouched:
/// Module::to() gives every tensor its data anew even where it does not move it.
void move_to_device(torch::nn::Module& module, c10::Device device);

}  // namespace adaptertune
