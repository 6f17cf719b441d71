// StopOnInterrupt: Ctrl-C sets stop_requested(), on an alternate signal stack, and what was there
// before comes back; and Ctrl-C in the middle of oneDNN's products leaves their results intact.
#include "adaptertune/training/interrupt.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "adaptertune/layers/linear.h"

namespace adaptertune {
namespace {

TEST(StopOnInterrupt, HandlesCtrlCOnAnAlternateStackAndRestoresWhatWasThere) {
  struct sigaction before {};
  ASSERT_EQ(sigaction(SIGINT, nullptr, &before), 0);
  stack_t stack_before{};
  ASSERT_EQ(sigaltstack(nullptr, &stack_before), 0);
  stop_requested() = false;
  {
    StopOnInterrupt guard;
    struct sigaction during {};
    ASSERT_EQ(sigaction(SIGINT, nullptr, &during), 0);
    EXPECT_NE(during.sa_flags & SA_ONSTACK, 0);
    stack_t stack_during{};
    ASSERT_EQ(sigaltstack(nullptr, &stack_during), 0);
    EXPECT_EQ(stack_during.ss_flags & SS_DISABLE, 0) << "no alternate stack while it lives";
    ASSERT_EQ(raise(SIGINT), 0);
    EXPECT_TRUE(stop_requested().load());
  }
  struct sigaction after {};
  ASSERT_EQ(sigaction(SIGINT, nullptr, &after), 0);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
  stack_t stack_after{};
  ASSERT_EQ(sigaltstack(nullptr, &stack_after), 0);
  EXPECT_EQ(stack_after.ss_flags & SS_DISABLE, stack_before.ss_flags & SS_DISABLE);
  stop_requested() = false;
}

// oneDNN 2.x's float32 GEMM kernels run with the stack pointer in a heap buffer: a signal frame
// pushed on the interrupted stack corrupted their results and the heap. Each round sends Ctrl-C
// to this thread at a random moment of a stream of products of a small training step's shapes,
// on one thread as the two-process test that found it ran.
TEST(StopOnInterrupt, CtrlCDuringMatrixProductsLeavesTheirResultsIntact) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  torch::manual_seed(17);
  const at::Tensor x = torch::randn({256, 1024}).set_requires_grad(true);
  const at::Tensor w = (torch::randn({256, 1024}) * 0.03).set_requires_grad(true);
  const at::Tensor upstream = torch::randn({256, 256});
  // The forward product and both of its backward ones (x W^T, dY W, dY^T X): each orientation
  // of the operands runs its own kernel.
  auto products = [&] {
    x.mutable_grad() = at::Tensor();
    w.mutable_grad() = at::Tensor();
    const at::Tensor y = linear(x, w, at::Tensor());
    y.backward(upstream);
    return std::vector<at::Tensor>{y.detach(), x.grad(), w.grad()};
  };
  const std::vector<at::Tensor> expected = products();
  const pthread_t self = pthread_self();
  std::mt19937 random(5);
  std::uniform_int_distribution<int> delay_us(0, 20000);
  for (int round = 0; round < 40; ++round) {
    stop_requested() = false;
    StopOnInterrupt guard;
    const int delay = delay_us(random);
    std::thread sender([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(delay));
      pthread_kill(self, SIGINT);
    });
    double worst = 0;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(25);
    while (std::chrono::steady_clock::now() < until) {
      const std::vector<at::Tensor> results = products();
      for (size_t i = 0; i < results.size(); ++i) {
        worst = std::max(worst, (results[i] - expected[i]).abs().max().item<double>());
      }
    }
    sender.join();
    ASSERT_TRUE(stop_requested().load()) << "round " << round;
    ASSERT_LT(worst, 1e-3) << "round " << round << ", Ctrl-C after " << delay << " us";
  }
  stop_requested() = false;
  at::set_num_threads(threads);
}

}  // namespace
}  // namespace adaptertune
