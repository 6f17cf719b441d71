#pragma once
// A group of two processes inside one test: two threads, each a member of its own.

#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "adaptertune/distributed/process_group.h"
#include "test_util.h"

namespace adaptertune::testing {

/// Runs `work(group)` as both members of a group of two, each in a thread of its own (Gloo on the
/// CPU, meeting at a file in fresh_dir(`name`)); rethrows what either threw once both have ended.
inline void in_group_of_two(const std::string& name,
                            const std::function<void(ProcessGroup& group)>& work) {
  const std::string store = "file://" + fresh_dir(name);
  std::exception_ptr failed[2];
  std::vector<std::thread> threads;
  for (int64_t rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        DistributedOptions o;
        o.rank = rank;
        o.world_size = 2;
        o.init_method = store;
        o.backend = "gloo";
        o.timeout_seconds = 60;
        ProcessGroup group(o, c10::Device(c10::kCPU));
        work(group);
      } catch (...) {
        failed[rank] = std::current_exception();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const std::exception_ptr& e : failed) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace adaptertune::testing
