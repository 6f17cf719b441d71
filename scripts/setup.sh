#!/usr/bin/env bash
# Installs everything adaptertune needs to build, test and run on Debian 12 (bookworm), with
# apt-get. Safe to re-run: when every package is present it changes nothing.
# Works as root, or as a user with sudo; needs nothing preinstalled but apt.
set -euo pipefail

PACKAGES=(
  # toolchain
  g++ cmake ninja-build ccache make pkg-config ca-certificates
  # LibTorch (CPU) and the libraries the code links
  libtorch-dev libsentencepiece-dev nlohmann-json3-dev libcli11-dev libutf8proc-dev
  # RFC 4180 CSV for a user's own data sets (quoted fields, doubled quotes, line breaks)
  libcsv-dev
  # tests
  libgtest-dev googletest
  # SHA-256 for the base-model identity recorded in adapter packs
  libssl-dev
  # HTTP for `adaptertune serve` (cpp-httplib: no HTTP parsing of our own)
  libcpp-httplib-dev
  # Gloo's headers: distributed training on LibTorch's c10d Gloo backend (LibTorch links libgloo)
  libgloo-dev
  # a real BLAS: without it Debian's LibTorch falls back to reference BLAS (~30x slower)
  libopenblas0-openmp
  # oneDNN's headers: float32 Linear layers call oneDNN directly (LibTorch already links libdnnl)
  libdnnl-dev
  # OpenCL's headers and loader: Debian's oneDNN is built with an OpenCL GPU runtime, and its CMake
  # package (dnnl-config.cmake) fails without them (a Recommends, which apt skips here)
  ocl-icd-opencl-dev
  # TCMalloc, the malloc of the adaptertune tool and the benchmark: glibc's fragments held a third
  # of a training step's peak memory
  libgoogle-perftools-dev
  # headless browser for the page `adaptertune serve` offers (ctest label browser)
  chromium chromium-driver
  # independent reference for checkpoint parity tests (Debian's own python3 with torch)
  python3 python3-torch python3-numpy
)

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "setup.sh: run as root or install sudo: apt-get needs root" >&2
  exit 1
fi

missing=()
for package in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all packages present"
fi

# Make sure the OpenMP OpenBLAS is the BLAS/LAPACK that LibTorch loads.
arch_triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
  candidate=/usr/lib/$arch_triplet/openblas-openmp/$lib
  if [ -e "$candidate" ]; then
    "${SUDO[@]}" update-alternatives --quiet --set "$lib-$arch_triplet" "$candidate" || true
  fi
done
