#pragma once
/// @file runtime.h
/// Process-wide runtime settings: how many CPU threads LibTorch uses.

namespace adaptertune {

/// Sets LibTorch's intra-op thread count and records that the caller chose it, so that the
/// library's default (all cores) no longer applies. `num_threads` must be positive.
void set_num_threads(int num_threads);

/// The number of threads the library picks when the user has not chosen: the
/// `ADAPTERTUNE_NUM_THREADS` or `OMP_NUM_THREADS` environment variable when set to a positive
/// number, otherwise every core the process may run on.
int default_num_threads();

/// Applies default_num_threads() once per process unless set_num_threads() was called first.
/// Model constructors call it, so users rarely need to; calling it again does nothing.
void ensure_default_threads();

}  // namespace adaptertune
