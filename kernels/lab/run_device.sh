#!/usr/bin/env bash
# One device run of the op-kernel lab: GPU test, PyTorch SDPA baseline, lab.
# The binaries come prebuilt in build-carry/ (the GPU machine lacks the
# project's CPU dependencies: Eigen, Boost, fmt, GTest); build them here with
#   cmake -S . -B build-cuda -G Ninja -DROPESCOPE_BUILD_BENCH=OFF
#   ninja -C build-cuda attention_lab test_gpu_attention
# and copy them with libfmt / libquadmath into build-carry/{,lib/}.
# Logs go to $OUT (or ./lab-out).
set -uo pipefail
out=${OUT:-lab-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/build-carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv 2>&1 | tee "$out/gpu.txt"
cuobjdump --dump-sass build-carry/attention_lab 2>&1 | grep -oE "HMMA[.A-Z0-9]*|LDSM[.A-Z0-9]*|LDGSTS[.A-Z0-9]*|LDL|STL" | sort | uniq -c | tee "$out/sass.txt"
build-carry/test_gpu_attention 2>&1 | tee "$out/test.log"
PYTHONUNBUFFERED=1 python3 bench/torch_attention_baseline.py --out "$out/sdpa.txt" 2>&1 | tee "$out/sdpa.log"
build-carry/attention_lab --sdpa "$out/sdpa.txt" 2>&1 | tee "$out/lab.log"
