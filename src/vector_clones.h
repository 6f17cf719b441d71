#pragma once
// Hot element-wise loops of the library compiled for several instruction sets (private).
//
// Debian builds for baseline x86-64 (SSE2: no 64-bit vector multiply, no FMA). A function marked
// ADAPTERTUNE_VECTOR_CLONES is also compiled for x86-64-v3 (AVX2) and x86-64-v4 (AVX-512), and the
// dynamic loader picks the best the CPU has (GCC's target_clones, an ifunc). Elsewhere (another
// compiler or architecture) it is compiled once, as usual. Write such loops without branches or
// calls, so that the compiler vectorises them.
//
// Not under ThreadSanitizer: the loader runs an ifunc's resolver while it relocates the library,
// before the sanitizer's runtime has started, and GCC instruments the resolver, so every program
// linking a -fsanitize=thread build of the library crashed before main().

#include "sanitizer_build.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(ADAPTERTUNE_THREAD_SANITIZER)
#define ADAPTERTUNE_VECTOR_CLONES \
  __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define ADAPTERTUNE_VECTOR_CLONES
#endif
