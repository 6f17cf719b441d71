#pragma once
/// @file interrupt.h
/// Stopping a training loop cleanly from Ctrl-C (or another thread).

#include <atomic>
#include <memory>

namespace adaptertune {

/// The process-wide request to stop at the next optimizer-step boundary. Trainer::train() and
/// pretrain_mlm() clear it when they start, check it after every step, and on seeing it save a
/// checkpoint and return with `interrupted` set. Setting it is async-signal-safe.
std::atomic<bool>& stop_requested();

/// While alive, SIGINT (Ctrl-C) sets stop_requested() instead of ending the process, so that the
/// run in progress can save a checkpoint; a second Ctrl-C ends the process as usual. The previous
/// handler is restored on destruction.
///
/// The handler runs on an alternate signal stack (installed for the constructing thread unless it
/// has one): oneDNN's float32 GEMM kernels (2.x, fixed upstream in 2026) point the stack pointer
/// into a heap buffer while they run, and a signal frame pushed there corrupted the heap (a
/// two-process training run stopped by Ctrl-C crashed about one time in five).
class StopOnInterrupt {
 public:
  StopOnInterrupt();
  ~StopOnInterrupt();
  StopOnInterrupt(const StopOnInterrupt&) = delete;
  StopOnInterrupt& operator=(const StopOnInterrupt&) = delete;

 private:
  struct Saved;  // the previous handler and alternate stack
  std::unique_ptr<Saved> saved_;
};

}  // namespace adaptertune
