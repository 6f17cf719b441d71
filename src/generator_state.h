#pragma once
// A random generator's state, kept to be put back: for code that draws from a stream of its own
// (a checkpoint's second run, a batch's dropout, the held-out masking) and must leave the
// generator where it found it.

#include <mutex>
#include <utility>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace adaptertune::detail {

/// `generator`'s state when made, taken under the generator's lock; put_back() restores it.
struct GeneratorState {
  at::Generator generator;
  at::Tensor state;

  explicit GeneratorState(at::Generator of) : generator(std::move(of)) {
    std::lock_guard<std::mutex> lock(generator.mutex());
    state = generator.get_state();
  }
  void put_back() {
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(state);
  }
};

}  // namespace adaptertune::detail
