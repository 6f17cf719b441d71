#include "adaptertune/training/interrupt.h"

#include <signal.h>

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <vector>

namespace adaptertune {
namespace {

void request_stop(int) {
  stop_requested() = true;
  // The next Ctrl-C is for a user who does not want to wait for the checkpoint.
  std::signal(SIGINT, SIG_DFL);
}

}  // namespace

struct StopOnInterrupt::Saved {
  struct sigaction previous_action {};
  bool installed_stack = false;
  stack_t previous_stack{};
  std::vector<char> stack;
};

std::atomic<bool>& stop_requested() {
  static std::atomic<bool> flag{false};
  return flag;
}

StopOnInterrupt::StopOnInterrupt() : saved_(std::make_unique<Saved>()) {
  // An alternate stack for this thread, where SIGINT lands (see the header for why), unless the
  // thread already has one (a sanitizer's, say).
  stack_t current{};
  if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) != 0) {
    // Room for the signal frame with AVX-512 state and the handler: far more than MINSIGSTKSZ.
    saved_->stack.resize(std::max<std::size_t>(64 * 1024, 4 * MINSIGSTKSZ));
    stack_t ours{};
    ours.ss_sp = saved_->stack.data();
    ours.ss_size = saved_->stack.size();
    saved_->installed_stack = sigaltstack(&ours, &saved_->previous_stack) == 0;
  }
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_ONSTACK | SA_RESTART;  // SA_RESTART: as std::signal() installs handlers
  if (sigaction(SIGINT, &action, &saved_->previous_action) != 0) {
    saved_->previous_action = {};
    saved_->previous_action.sa_handler = SIG_DFL;
  }
}

StopOnInterrupt::~StopOnInterrupt() {
  sigaction(SIGINT, &saved_->previous_action, nullptr);
  if (saved_->installed_stack) sigaltstack(&saved_->previous_stack, nullptr);
}

}  // namespace adaptertune
