#pragma once
// LibTorch's at::parallel_for, for the library's own element-wise kernels (private).
//
// at::parallel_for is inline: it splits a loop over LibTorch's intra-op threads only where the
// source that calls it is compiled with OpenMP, and otherwise runs the whole loop on the calling
// thread, silently (until 2026-12-04 every such loop of this library ran so). A source that
// includes this header must be listed in CMakeLists.txt's ADAPTERTUNE_PARALLEL_SOURCES, which
// compiles it with OpenMP; one that is not listed fails to build here.

#include <ATen/Parallel.h>

#if !defined(_OPENMP) && !defined(ADAPTERTUNE_WITHOUT_OPENMP)
#error "at::parallel_for without OpenMP runs on one thread: list this source in CMakeLists.txt's ADAPTERTUNE_PARALLEL_SOURCES"
#endif
