#!/usr/bin/env bash
# Configures and builds ropescope into build/ (Release, Ninja) for this
# machine: -march=native (ROPESCOPE_NATIVE_CPU=ON; the binaries run only on
# machines like it). CUDA code is compiled when nvcc is found (on PATH or in
# /usr/local/cuda/bin). Arguments go to cmake after these and win, e.g.
# scripts/build.sh -DROPESCOPE_NATIVE_CPU=OFF for binaries to run elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DROPESCOPE_NATIVE_CPU=ON "$@" >/dev/null
cmake --build build -j "$(nproc)"
