#!/usr/bin/env bash
# One device run for the cuda-window slice (scale, softcap, sliding windows):
# test_gpu_ops (per-kernel registry), test_gpu_backend, test_gpu_attention,
# compute-sanitizer memcheck + racecheck on test_gpu_ops (and memcheck on the
# windowed backend tests), A/B timing of the default path against the base
# commit's kernels (ab_old / ab_new), and the sliding-window timing of attention_lab.
# Binaries prebuilt here and carried in build-carry-cuda/ (test_gpu_ops,
# test_gpu_backend, test_gpu_attention, attention_lab, ropescope, ab_old and
# ab_new from kernels/lab/ab_build.sh, lib/ with libfmt, libgomp, libquadmath,
# boost, onig, utf8proc and their compression libraries); logs to $OUT.
# Copied to build-carry-cuda/run.sh (the device runs the main checkout):
#   bash build-carry-cuda/run.sh [ops] [backend] [ab] [sanitize] [lab]
set -uo pipefail
out=${OUT:-lab-out}
mkdir -p "$out"
c=$PWD/build-carry-cuda
export LD_LIBRARY_PATH=$c/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export ROPESCOPE_SOURCE_DIR=$PWD ROPESCOPE_BINARY=$c/ropescope
steps=${*:-ops backend sanitize lab}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv 2>&1 | tee "$out/gpu.txt"
for step in $steps; do
  t0=$(date +%s)
  case $step in
    ops)
      timeout 200 $c/test_gpu_ops > "$out/test_ops.log" 2>&1; echo "test_gpu_ops exit $?"
      grep -E "^\[  (PASSED|FAILED) |tests ran|Failure|worst" "$out/test_ops.log" | head -60
      $c/test_gpu_attention > "$out/test_attention.log" 2>&1; echo "test_gpu_attention exit $?"; tail -3 "$out/test_attention.log" ;;
    backend)
      timeout 240 $c/test_gpu_backend > "$out/test_backend.log" 2>&1; echo "test_gpu_backend exit $?"
      grep -E "^\[(arch|profile|maps|mistral|granite)|FAILED|PASSED|Failure|Expected|Which is|tests ran" "$out/test_backend.log" | head -90 ;;
    sanitize)
      for tool in memcheck racecheck; do
        timeout 170 compute-sanitizer --tool $tool --error-exitcode 9 $c/test_gpu_ops \
          --gtest_filter='*G8_d128*:*G4_d64*:*T2100*:*d16*:*T77*' > "$out/ops_$tool.log" 2>&1
        echo "compute-sanitizer $tool test_gpu_ops exit $?"
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Race reported|Invalid|tests ran|PASSED|FAILED" "$out/ops_$tool.log" | sort | uniq -c | head -8
      done
      timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 $c/test_gpu_backend \
        --gtest_filter='CudaMatchesCpuArchitectures.*:CudaMatchesCpuRandom.SlidingWindowAndScale' > "$out/backend_memcheck.log" 2>&1
      echo "compute-sanitizer memcheck test_gpu_backend (arch + window) exit $?"
      grep -E "ERROR SUMMARY|tests ran|PASSED|FAILED" "$out/backend_memcheck.log" | head -5 ;;
    ab)
      for b in ab_old ab_new ab_old ab_new; do echo "$b"; timeout 60 $c/$b 10; done 2>&1 | tee "$out/ab.log" ;;
    lab)
      timeout 90 $c/attention_lab --windows --reps 10 2>&1 | tee "$out/window_lab.log" ;;
  esac
  echo "step $step: $(( $(date +%s) - t0 )) s"
done
