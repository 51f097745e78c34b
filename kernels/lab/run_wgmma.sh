#!/usr/bin/env bash
# One device run for the Hopper attention kernel (ops/attention_wgmma.cu):
# SASS check (HGMMA, TMA, no local memory), PyTorch SDPA baseline, then the
# lab validating and timing both attention kernels. The lab comes prebuilt in
# build-carry-wgmma/ (the GPU machine lacks Eigen, Boost, fmt): build it here with
#   cmake -S . -B build-wgmma -G Ninja -DROPESCOPE_BUILD_BENCH=OFF -DROPESCOPE_BUILD_TESTS=OFF
#   ninja -C build-wgmma attention_lab
# and copy kernels/attention_lab with libfmt / libquadmath into build-carry-wgmma/{,lib/}.
# Logs go to $OUT (or ./lab-out). Extra arguments go to attention_lab.
set -uo pipefail
out=${OUT:-lab-out}
carry=build-carry-wgmma
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/$carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv 2>&1 | tee "$out/gpu.txt"
cuobjdump --dump-sass "$carry/attention_lab" 2>&1 |
  grep -oE "HGMMA[.A-Z0-9x]*|HMMA[.A-Z0-9]*|UTMALDG[.A-Z0-9]*|LDL|STL" | sort | uniq -c | tee "$out/sass.txt"
PYTHONUNBUFFERED=1 python3 bench/torch_attention_baseline.py --out "$out/sdpa.txt" 2>&1 | tee "$out/sdpa.log"
"$carry/attention_lab" --sdpa "$out/sdpa.txt" "$@" 2>&1 | tee "$out/lab.log"
