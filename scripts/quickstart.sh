#!/usr/bin/env bash
# The main job, from a fresh clone: installs dependencies, builds and installs the library, builds
# the examples against it and runs the adapter demo (a bert-base-shaped model with Houlsby adapters:
# parameter table, a forward pass, a few adapter training steps).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh" -DADAPTERTUNE_BUILD_TESTS=OFF
build_dir=${ADAPTERTUNE_BUILD_DIR:-$root/build}
install_dir=${ADAPTERTUNE_INSTALL_DIR:-$root/out/install}
cmake -S "$root/examples" -B "$build_dir/examples" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$install_dir"
cmake --build "$build_dir/examples" -j "$(nproc)"
"$build_dir/examples/adapter_demo" "$@"
