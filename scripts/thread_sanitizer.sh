#!/usr/bin/env bash
# ThreadSanitizer over what the library and the server promise about threads: a Predictor that
# any number of threads call at once while tasks load and unload (tests Predictor.* and
# PredictorTest.*), the interrupt handler and the run-directory lock, the server's dynamic
# batcher (serve_tests), and `adaptertune serve` end to end (tests/server/server_test.py:
# concurrent clients, packs loaded and unloaded under traffic, overload, SIGTERM in flight).
# Builds its own tree with -fsanitize=thread (tried with GCC 12), runs them, and fails if any
# ThreadSanitizer report was written; the reports stay in BUILD_DIR/tsan-reports.
#
# Left out, on purpose:
# - OpenMP's threads (OMP_NUM_THREADS=1): libgomp's barriers are not instrumented, so every
#   tensor written inside a parallel region and read after it would be reported.
# - The in-process Gloo groups of two (tests named *Group*): the reports are inside LibTorch's
#   c10d (a Work's condition variable destroyed by its waiter while the Gloo thread that
#   finished it still signals it; reference counts dropped in uninstrumented code), not here.
#
# Minutes: on 2 cores the build took 27 min and the runs 3.5 (2026-12-07; ctest -L tsan).
# Usage: scripts/thread_sanitizer.sh [BUILD_DIR] (default: build-tsan in the project)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-tsan}
reports=$build/tsan-reports

mkdir -p "$build"
# tcmalloc would replace the sanitizer's allocator, which must see every allocation.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DADAPTERTUNE_BUILD_TESTS=ON -DADAPTERTUNE_WITH_TCMALLOC=OFF \
  -DCMAKE_CXX_FLAGS=-fsanitize=thread -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >"$build/configure.log"
# gtest_discover_tests runs the test programs at build time, under the sanitizer already.
cmake --build "$build" --target adaptertune_tests serve_tests adaptertune_cli

rm -rf "$reports" "$build/tsan-work"
mkdir -p "$reports"
export OMP_NUM_THREADS=1
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 log_path=$reports/report"
# Without address-space randomisation: GCC 12's runtime refuses some of the layouts that kernels
# with more mmap randomisation bits give ("unexpected memory mapping").
norandom=(setarch "$(uname -m)" -R)
status=0
"${norandom[@]}" "$build/tests/serve_tests" || status=1
"${norandom[@]}" "$build/tests/adaptertune_tests" \
  --gtest_filter='Predictor.*:Devices/PredictorTest.*/cpu:StopOnInterrupt.*:DirectoryLock.*:-*Group*' \
  || status=1
"${norandom[@]}" /usr/bin/python3 "$root/tests/server/server_test.py" \
  "$build/tools/cli/adaptertune" "$root" "$build/tsan-work" || status=1

shopt -s nullglob
found=("$reports"/report.*)
if [ "${#found[@]}" -gt 0 ]; then
  cat "${found[@]}"
  echo "thread_sanitizer.sh: FAIL: ${#found[@]} process(es) wrote reports, in $reports"
  exit 1
fi
[ "$status" -eq 0 ] || { echo "thread_sanitizer.sh: FAIL: a test failed"; exit 1; }
echo "thread_sanitizer.sh: PASS (no ThreadSanitizer report)"
