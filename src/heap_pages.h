#pragma once
// Giving the heap's free pages back after a one-time reshuffle of large blocks.

namespace adaptertune {

// Returns the pages of free heap blocks to the kernel: glibc's malloc_trim(0), which also releases
// whole free pages inside the heap, not only at its top, or TCMalloc's ReleaseFreeMemory where
// TCMalloc serves malloc (runtime.h, cpu_allocator()); does nothing elsewhere. With
// tune_cpu_allocator()'s settings freed blocks otherwise stay resident for reuse, which is what a
// training step wants, but a block freed while its replacement is allocated elsewhere (weights
// repacked once) would then count twice towards the process's memory.
void release_free_heap_pages();

}  // namespace adaptertune
