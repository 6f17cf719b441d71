#pragma once
/// @file runtime.h
/// Process-wide runtime settings: how many CPU threads LibTorch uses, and its random seed.

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

}  // namespace adaptertune
