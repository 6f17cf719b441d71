// tune_cpu_allocator(): freed CPU memory stays with the process, so a block of the size of a large
// activation, freed and allocated again, does not fault its pages in a second time. Its own
// executable: the allocator's settings are process-wide and start from glibc's defaults here.

#include <sys/resource.h>

#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

#include "adaptertune/runtime.h"

namespace adaptertune {
namespace {

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

/// Page faults of allocating `bytes`, writing every byte and freeing them, the second time round.
long faults_of_a_reused_block(size_t bytes) {
  for (int round = 0; round < 2; ++round) {
    const long before = minor_faults();
    // volatile: the compiler may not drop the allocation and the writes as dead code.
    char* volatile block = static_cast<char*>(std::malloc(bytes));
    std::memset(block, round + 1, bytes);
    std::free(block);
    if (round == 1) return minor_faults() - before;
  }
  return 0;
}

TEST(Runtime, TunedAllocatorReusesFreedBlocksWithoutFaultingTheirPagesAgain) {
#if defined(__GLIBC__)
  // 24 MiB: larger than glibc's default mmap threshold can have grown to in this fresh process;
  // by default glibc maps such a block anew on each allocation (about 6,000 faults of 4 KiB
  // pages). 96 MiB: larger than the 32 MiB glibc lets the mmap threshold reach, the size of a
  // masked-LM step's vocabulary logits; only a heap without mmap() keeps it. Tuned, both stay.
  ASSERT_TRUE(tune_cpu_allocator());
  for (size_t bytes : {size_t{24} << 20, size_t{96} << 20}) {
    const long pages = static_cast<long>(bytes / 4096);
    EXPECT_LT(faults_of_a_reused_block(bytes), pages / 10) << bytes / (1 << 20) << " MiB";
  }
#else
  GTEST_SKIP() << "tune_cpu_allocator() tunes glibc's malloc only";
#endif
}

TEST(Runtime, NamesGlibcAsTheAllocatorOfAProgramThatLinksNoOther) {
#if defined(__GLIBC__)
  EXPECT_STREQ(cpu_allocator(), "glibc");
#else
  EXPECT_STRNE(cpu_allocator(), "glibc");
#endif
}

TEST(Runtime, TuningTheAllocatorCanBeTurnedOffFromTheEnvironment) {
  ASSERT_EQ(setenv("ADAPTERTUNE_SYSTEM_MALLOC", "1", 1), 0);
  EXPECT_FALSE(tune_cpu_allocator());
  unsetenv("ADAPTERTUNE_SYSTEM_MALLOC");
  ASSERT_EQ(setenv("MALLOC_TRIM_THRESHOLD_", "1000000", 1), 0);
  EXPECT_FALSE(tune_cpu_allocator()) << "the user's own malloc settings win";
  unsetenv("MALLOC_TRIM_THRESHOLD_");
  ASSERT_EQ(setenv("MALLOC_MMAP_MAX_", "65536", 1), 0);
  EXPECT_FALSE(tune_cpu_allocator()) << "the user's own malloc settings win";
  unsetenv("MALLOC_MMAP_MAX_");
}

}  // namespace
}  // namespace adaptertune
