#include "adaptertune/training/interrupt.h"

#include <csignal>

namespace adaptertune {
namespace {

void request_stop(int) {
  stop_requested() = true;
  // The next Ctrl-C is for a user who does not want to wait for the checkpoint.
  std::signal(SIGINT, SIG_DFL);
}

}  // namespace

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

StopOnInterrupt::StopOnInterrupt() : previous_(std::signal(SIGINT, request_stop)) {
  if (previous_ == SIG_ERR) previous_ = SIG_DFL;
}

StopOnInterrupt::~StopOnInterrupt() {
  std::signal(SIGINT, previous_);
}

}  // namespace adaptertune
