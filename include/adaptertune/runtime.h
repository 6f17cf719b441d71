#pragma once
/// @file runtime.h
/// Process-wide runtime settings: how many CPU threads LibTorch uses, its random seed, and how the
/// C library's allocator treats the memory LibTorch frees.

#include <cstdint>

namespace adaptertune {

/// Seeds LibTorch's CPU and CUDA generators. LibTorch seeds them from the OS at start-up, so
/// without this every process initialises new modules (adapters, heads, a missing pooler)
/// differently; call it before building or extending a model for results that repeat run to run.
void set_seed(uint64_t seed);

/// Sets LibTorch's intra-op thread count and records that the caller chose it, so that the
/// library's default (all cores) no longer applies. `num_threads` must be positive.
void set_num_threads(int num_threads);

/// The number of threads the library picks when the user has not chosen: the
/// `ADAPTERTUNE_NUM_THREADS` or `OMP_NUM_THREADS` environment variable when set to a positive
/// number, otherwise every core the process may run on.
int default_num_threads();

/// Applies default_num_threads() once per process, unless the application chose a count first:
/// with set_num_threads(), or with torch::set_num_threads() (seen as a count that differs from
/// LibTorch's when this library was loaded; a count equal to LibTorch's own default cannot be
/// told apart from no choice, so call set_num_threads() for that one). Model constructors call
/// it, so users rarely need to; calling it again does nothing.
void ensure_default_threads();

/// The allocator that serves this process's malloc: "tcmalloc" (gperftools' TCMalloc, which the
/// `adaptertune` tool and `adaptertune_bench` link when built with it), "glibc", or "other". The
/// library works with any of them; which one runs is the application's choice (README, "The CPU
/// allocator").
const char* cpu_allocator();

/// Makes glibc's malloc keep the memory that LibTorch's CPU tensors free, instead of handing it
/// back to the kernel after each one: every block comes from the heap rather than from mmap()
/// (except those over 64 MiB that a thread other than the main one asks for, which glibc maps
/// anyway), and up to 1 GiB of freed heap stays mapped. LibTorch has no caching allocator on the
/// CPU, so by default every large activation is a fresh mapping whose pages fault in again on
/// first write; on the 2-core machine this roughly doubled the time of a forward pass, and the
/// time of a masked-LM pretraining step (docs/benchmarks.md, "Fast paths, each measured"). The
/// cost: the process keeps its peak heap rather than shrinking after it.
///
/// It changes the whole process, so the library never calls it by itself; the `adaptertune`
/// command-line tool does when it runs on glibc's malloc. Does nothing and returns false where
/// glibc's malloc does not serve the process (cpu_allocator(): TCMalloc needs no tuning),
/// where `ADAPTERTUNE_SYSTEM_MALLOC=1` is set, or where the environment already tunes malloc
/// (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_MAX_`, or malloc settings in
/// `GLIBC_TUNABLES`); returns true once the settings are applied. Call it early, before the first
/// model is built.
bool tune_cpu_allocator();

}  // namespace adaptertune
