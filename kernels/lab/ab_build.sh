#!/usr/bin/env bash
# Builds kernels/lab/ab_attention.cu against the kernels/ops sources of one
# checkout: ab_build.sh ROOT OUT (ROOT holds kernels/ops/*; OUT the binary).
# sm_90 for the mma.sync kernels, sm_90a for the wgmma one, as CMake does.
set -euo pipefail
root=$1 out=$2 here=$(cd "$(dirname "$0")" && pwd)
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
tmp=$(mktemp -d)
flags="-O3 -std=c++17 -I$root"
for f in attention attention_profile elementwise; do
  "$nvcc" $flags -gencode=arch=compute_90,code=sm_90 -c "$root/kernels/ops/$f.cu" -o "$tmp/$f.o" &
done
"$nvcc" $flags -gencode=arch=compute_90a,code=sm_90a -c "$root/kernels/ops/attention_wgmma.cu" -o "$tmp/wgmma.o" &
wait
"$nvcc" $flags -gencode=arch=compute_90,code=sm_90 "$here/ab_attention.cu" "$tmp"/*.o -o "$out"
rm -rf "$tmp"
