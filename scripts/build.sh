#!/usr/bin/env bash
# Configures and builds adaptertune (Release, Ninja, ccache) into build/ and installs it into
# out/install, so that examples/ can be built against the installed package.
# Usage: scripts/build.sh [extra CMake arguments]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${ADAPTERTUNE_BUILD_DIR:-$root/build}
install_dir=${ADAPTERTUNE_INSTALL_DIR:-$root/out/install}
jobs=${ADAPTERTUNE_JOBS:-$(nproc)}

cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$install_dir" "$@"
cmake --build "$build_dir" -j "$jobs"
cmake --install "$build_dir" > /dev/null
echo "build.sh: built in $build_dir, installed into $install_dir"
