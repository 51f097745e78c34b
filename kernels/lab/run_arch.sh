#!/usr/bin/env bash
# One device run for the cuda-arch slice (issue 18: qk-norm, norm / MLP kinds,
# block kinds, multipliers, final softcap, NoPE and local-RoPE layers, fused
# projections on the CUDA backend): test_gpu_ops (the attention registry and
# the new row kernels), test_gpu_attention, test_gpu_backend (every
# architecture fixture against the CPU), then compute-sanitizer memcheck and
# racecheck on the row kernels and memcheck on the architecture fixtures.
# Binaries prebuilt here and carried in build-carry-arch/ (test_gpu_ops,
# test_gpu_backend, test_gpu_attention, ropescope; lib/ as for
# run_window.sh); logs to $OUT. Copied to build-carry-arch/run.sh (the device
# runs the main checkout):
#   bash build-carry-arch/run.sh [ops] [backend] [sanitize]
set -uo pipefail
out=${OUT:-lab-out}
mkdir -p "$out"
c=$PWD/build-carry-arch
export LD_LIBRARY_PATH=$c/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export ROPESCOPE_SOURCE_DIR=$PWD ROPESCOPE_BINARY=$c/ropescope
steps=${*:-ops backend sanitize}
nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv 2>&1 | tee "$out/gpu.txt"
for step in $steps; do
  t0=$(date +%s)
  case $step in
    ops)
      timeout 150 $c/test_gpu_ops > "$out/test_ops.log" 2>&1; echo "test_gpu_ops exit $?"
      grep -E "^\[  (PASSED|FAILED) |tests ran|Failure|\|err\| / tol" "$out/test_ops.log" | grep -v "^  (mma|wgmma|simple|sums|blocks)" | head -40
      timeout 60 $c/test_gpu_attention > "$out/test_attention.log" 2>&1; echo "test_gpu_attention exit $?"; tail -2 "$out/test_attention.log" ;;
    backend)
      timeout 240 $c/test_gpu_backend > "$out/test_backend.log" 2>&1; echo "test_gpu_backend exit $?"
      grep -E "^\[arch|FAILED|PASSED|Failure|Expected|Which is|tests ran" "$out/test_backend.log" | head -120 ;;
    sanitize)
      for tool in memcheck racecheck; do
        timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 $c/test_gpu_ops --gtest_filter='GpuRowOps.*' \
          > "$out/ops_$tool.log" 2>&1
        echo "compute-sanitizer $tool test_gpu_ops GpuRowOps exit $?"
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|tests ran|PASSED|FAILED" "$out/ops_$tool.log" | head -4
      done
      timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 $c/test_gpu_backend \
        --gtest_filter='CudaMatchesCpuArchitectures.*' > "$out/backend_memcheck.log" 2>&1
      echo "compute-sanitizer memcheck test_gpu_backend (arch fixtures) exit $?"
      grep -E "ERROR SUMMARY|tests ran|PASSED|FAILED|Invalid" "$out/backend_memcheck.log" | head -6 ;;
  esac
  echo "step $step: $(( $(date +%s) - t0 )) s"
done
