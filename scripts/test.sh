#!/usr/bin/env bash
# The project's test command (README, CI): installs dependencies, builds, runs the unit tests with
# ctest, then builds examples/ as a separate CMake project against the installed package and runs
# one of them.
# Heavy tests carry the ctest label "heavy" and are skipped here; run them with
#   ctest --test-dir build -L heavy
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh" -DADAPTERTUNE_BUILD_TESTS=ON

build_dir=${ADAPTERTUNE_BUILD_DIR:-$root/build}
install_dir=${ADAPTERTUNE_INSTALL_DIR:-$root/out/install}
# The Python reference (Debian python3-torch) is installed by setup.sh: its tests must not skip.
# Tests run in parallel, so their OpenMP threads share the cores: short spinning (see README,
# "Sharing cores") keeps them from waiting on each other.
GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-1000} ADAPTERTUNE_REQUIRE_REFERENCE=1 ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" -LE heavy

echo "test.sh: building examples/ against the installed package"
cmake -S "$root/examples" -B "$build_dir/examples" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$install_dir"
cmake --build "$build_dir/examples" -j "$(nproc)"
"$build_dir/examples/adapter_demo" --layers 2 --hidden 64 --heads 4 --steps 2 |
  tee "$build_dir/examples/adapter_demo.out"
# setup.sh installs TCMalloc, so the package's adaptertune::tcmalloc must have served the demo.
grep -q "^malloc: tcmalloc$" "$build_dir/examples/adapter_demo.out"
# The GLUE example end to end on a slice of SST-2, then classify with the adapter pack it kept.
example_run=$build_dir/examples/run-sst2
rm -rf "$example_run"
"$build_dir/examples/glue_finetune" "$root/models/adaptertune-base-uncased-L4-H256" "$root/data/glue" \
  SST-2 "$example_run" 1 256
printf 'a gorgeous , witty , seductive movie .\nthe plot is a dull mess .\n' |
  "$build_dir/examples/classify" "$root/models/adaptertune-base-uncased-L4-H256" "$example_run/best"
# Three GLUE tasks and a span task trained in turn on one base, then one Predictor answering a
# mixed batch (the question among the classifiers' requests).
rm -rf "$build_dir/examples/run-multi"
"$build_dir/examples/multi_task" "$root/models/adaptertune-base-uncased-L4-H256" "$root/data/glue" \
  "$build_dir/examples/run-multi" 128 "$root/tests/data/squad/dev-v1.1.json" |
  tee "$build_dir/examples/multi_task.out"
grep -q "base unchanged after all tasks: yes" "$build_dir/examples/multi_task.out"
grep -q '^{"task":"reader","answer":' "$build_dir/examples/multi_task.out"
# The README's C++ snippets compile and link against the installed package, and its command
# lines run (README, "Command-line tool").
echo "test.sh: checking the README's snippets and command lines"
python3 "$root/scripts/check_readme.py" "$build_dir" "$install_dir"
