#include "adaptertune/runtime.h"

#include <dlfcn.h>
#include <sched.h>
#if defined(__GLIBC__)
#include <gnu/lib-names.h>
#include <malloc.h>
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include <ATen/Parallel.h>
#include <torch/utils.h>

#include "adaptertune/error.h"
#include "adaptertune/version.h"
#include "heap_pages.h"

namespace adaptertune {
namespace {

std::atomic<bool> user_chose_threads{false};

// LibTorch's thread count when this library was loaded, before the application's main() ran:
// a different count later means the application chose one with torch::set_num_threads().
const int threads_at_load = at::get_num_threads();

int positive_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return 0;
  char* end = nullptr;
  long parsed = std::strtol(value, &end, 10);
  return (end != value && *end == '\0' && parsed > 0) ? static_cast<int>(parsed) : 0;
}

}  // namespace

const char* version() {
  return ADAPTERTUNE_VERSION_STRING;
}

void set_num_threads(int num_threads) {
  if (num_threads < 1) {
    throw Error("set_num_threads: need at least 1 thread, got " + std::to_string(num_threads));
  }
  user_chose_threads = true;
  at::set_num_threads(num_threads);
}

int default_num_threads() {
  if (int n = positive_env("ADAPTERTUNE_NUM_THREADS")) return n;
  if (int n = positive_env("OMP_NUM_THREADS")) return n;
  // The affinity mask, not hardware_concurrency(): a container or taskset may allow fewer cores.
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

void ensure_default_threads() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!user_chose_threads && at::get_num_threads() == threads_at_load) {
      at::set_num_threads(default_num_threads());
    }
  });
}

void set_seed(uint64_t seed) {
  torch::manual_seed(seed);
}

namespace {

// The malloc that the process's calls resolve to, and the allocators that may provide it: TCMalloc
// defines malloc as an alias of its tc_malloc, and glibc's own definition is found in libc itself,
// so the addresses match exactly when that allocator serves the process.
void* malloc_in_use() {
  return dlsym(RTLD_DEFAULT, "malloc");
}

bool tcmalloc_serves_malloc() {
  void* tc_malloc = dlsym(RTLD_DEFAULT, "tc_malloc");
  return tc_malloc != nullptr && tc_malloc == malloc_in_use();
}

bool glibc_serves_malloc() {
#if defined(__GLIBC__)
  void* libc = dlopen(LIBC_SO, RTLD_LAZY | RTLD_NOLOAD);
  if (libc == nullptr) return false;
  void* own_malloc = dlsym(libc, "malloc");
  dlclose(libc);
  return own_malloc != nullptr && own_malloc == malloc_in_use();
#else
  return false;
#endif
}

}  // namespace

const char* cpu_allocator() {
  if (tcmalloc_serves_malloc()) return "tcmalloc";
  if (glibc_serves_malloc()) return "glibc";
  return "other";
}

bool tune_cpu_allocator() {
#if defined(__GLIBC__)
  if (!glibc_serves_malloc()) return false;
  const char* opt_out = std::getenv("ADAPTERTUNE_SYSTEM_MALLOC");
  if (opt_out != nullptr && std::strcmp(opt_out, "1") == 0) return false;
  // Settings the user made in the environment win over ours.
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr ||
      std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr ||
      std::getenv("MALLOC_MMAP_MAX_") != nullptr ||
      (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr)) {
    return false;
  }
  // No block comes from mmap(): a mapped block goes back to the kernel when freed, and its pages
  // fault in again, zero-filled, on the next step. The mmap threshold alone cannot stop that for
  // the largest activations, since glibc caps it at 32 MiB on 64-bit systems, and a masked-LM
  // step's vocabulary logits or bert-base's feed-forward activations are larger. Setting any of
  // these turns off glibc's own adjustment of the thresholds: the trim threshold set alone would
  // pin the mmap threshold at its initial 128 KiB (4x slower than the default, measured), so they
  // go together. Blocks that a thread's arena cannot hold (over 64 MiB) are still mapped: glibc
  // falls back to mmap() for them whatever M_MMAP_MAX says.
  constexpr int kMmapThreshold = 32 << 20;
  constexpr int kTrimThreshold = 1 << 30;
  return mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 &&
         mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1 && mallopt(M_MMAP_MAX, 0) == 1;
#else
  return false;
#endif
}

void release_free_heap_pages() {
  if (tcmalloc_serves_malloc()) {
    // Looked up rather than linked: the library leaves the choice of malloc to the application.
    using ReleaseFreeMemory = void (*)();
    if (auto release = reinterpret_cast<ReleaseFreeMemory>(
            dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"))) {
      release();
    }
    return;
  }
#if defined(__GLIBC__)
  if (glibc_serves_malloc()) malloc_trim(0);
#endif
}

}  // namespace adaptertune
