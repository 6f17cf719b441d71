#!/usr/bin/env bash
# The library, its tests and the CLI built with a sanitizer and run; fails on any report. The
# reports stay in BUILD_DIR/sanitizer-reports. Tried with GCC 12.
#
# thread: ThreadSanitizer over what the library and the server promise about threads: a Predictor
#   that any number of threads call at once while tasks load and unload (tests Predictor.* and
#   PredictorTest.*), the interrupt handler and the run-directory lock, the server's dynamic
#   batcher (serve_tests), and `adaptertune serve` end to end (tests/server/server_test.py:
#   concurrent clients, packs loaded and unloaded under traffic, overload, SIGTERM in flight).
#   Left out, on purpose:
#   - OpenMP's threads (OMP_NUM_THREADS=1): libgomp's barriers are not instrumented, so every
#     tensor written inside a parallel region and read after it would be reported.
#   - The in-process Gloo groups of two (tests named *Group*): the reports are inside LibTorch's
#     c10d (a Work's condition variable destroyed by its waiter while the Gloo thread that
#     finished it still signals it; reference counts dropped in uninstrumented code), not here.
# address: AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer over every unit
#   test, the server's tests and the command-line scripts' tests (ctest's cli.*, server.* and
#   distributed.*: hostile input, several tasks, groups of processes), the CLI among them.
#   LibTorch itself is not instrumented: what it reads and writes inside its own buffers is not
#   checked, what this code hands it is.
#
# Minutes on 2 cores (2026-12-07): thread, build 27 and runs 3.5; address, build 58 (with other
# runs beside it), unit tests 3 and script tests 31 (in parts).
# Usage: scripts/sanitizer_check.sh thread|address [BUILD_DIR] (default: build-MODE in the project)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
case "$mode" in
  thread) flags="-fsanitize=thread" ;;
  # GCC 12 prints -Wmaybe-uninitialized inside LibTorch's headers (c10::optional<at::Generator>
  # copies) under this instrumentation only; the default build has no warning.
  address) flags="-fsanitize=address,undefined -fno-omit-frame-pointer" ;;
  *) echo "usage: $0 thread|address [BUILD_DIR]" >&2; exit 2 ;;
esac
build=${2:-$root/build-$mode}
reports=$build/sanitizer-reports

mkdir -p "$build"
# tcmalloc would replace the sanitizer's allocator, which must see every allocation.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DADAPTERTUNE_BUILD_TESTS=ON -DADAPTERTUNE_WITH_TCMALLOC=OFF -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" >"$build/configure.log"
# gtest_discover_tests runs the test programs at build time, under the sanitizer already.
cmake --build "$build" --target adaptertune_tests serve_tests adaptertune_cli

rm -rf "$reports" "$build/sanitizer-work"
mkdir -p "$reports"
export OMP_NUM_THREADS=1
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 allocator_may_return_null=1 log_path=$reports/report"
# allocator_may_return_null (both runtimes): an allocation too large for memory fails as it does
# without the sanitizer (LibTorch throws, the CLI says "out of memory"; a robustness case, and the
# server test's pack of a bottleneck beyond memory, ask for that), where ASan and TSan would abort.
export ASAN_OPTIONS="detect_leaks=1 allocator_may_return_null=1 log_path=$reports/report"
export UBSAN_OPTIONS="print_stacktrace=1 log_path=$reports/report"
# Without address-space randomisation: GCC 12's runtime refuses some of the layouts that kernels
# with more mmap randomisation bits give ("unexpected memory mapping").
norandom=(setarch "$(uname -m)" -R)
status=0
"${norandom[@]}" "$build/tests/serve_tests" || status=1
if [ "$mode" = thread ]; then
  "${norandom[@]}" "$build/tests/adaptertune_tests" \
    --gtest_filter='Predictor.*:Devices/PredictorTest.*/cpu:StopOnInterrupt.*:DirectoryLock.*:-*Group*' \
    || status=1
  "${norandom[@]}" /usr/bin/python3 "$root/tests/server/server_test.py" \
    "$build/tools/cli/adaptertune" "$root" "$build/sanitizer-work" || status=1
else
  "${norandom[@]}" "$build/tests/adaptertune_tests" || status=1
  "${norandom[@]}" ctest --test-dir "$build" --output-on-failure \
    -R '^(cli|server|distributed)\.' || status=1
fi

shopt -s nullglob
found=()
for report in "$reports"/report.*; do
  # allocator_may_return_null's one line for the allocation too large is expected, not a report.
  if grep -qv '^==[0-9]*==WARNING: AddressSanitizer failed to allocate 0x[0-9a-f]* bytes$' \
    "$report"; then
    found+=("$report")
  fi
done
if [ "${#found[@]}" -gt 0 ]; then
  cat "${found[@]}"
  echo "sanitizer_check.sh: FAIL: ${#found[@]} process(es) wrote $mode sanitizer reports, in $reports"
  exit 1
fi
[ "$status" -eq 0 ] || { echo "sanitizer_check.sh: FAIL: a test failed"; exit 1; }
echo "sanitizer_check.sh: PASS (no $mode sanitizer report)"
