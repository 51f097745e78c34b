#!/usr/bin/env bash
# One device run of the CUDA backend's checks and timings: the GPU test (CUDA
# against the CPU backend: NLL, hidden states, query noise, attention maps,
# distance profiles), compute-sanitizer memcheck and racecheck on a subset of
# it, and forward_lab (plain forward and exact distance profiles of the 376M
# EC shape). Binaries come prebuilt in build-carry/ (see run_device.sh):
# test_gpu_backend, test_gpu_attention, forward_lab and the ropescope CLI.
# Logs go to $OUT (or ./lab-out).
#   kernels/lab/run_backend.sh [test] [sanitize] [lab]   (default: all three)
set -uo pipefail
out=${OUT:-lab-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/build-carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export ROPESCOPE_SOURCE_DIR=$PWD
steps=${*:-test sanitize lab}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv 2>&1 | tee "$out/gpu.txt"
for step in $steps; do
  case $step in
    test)
      ROPESCOPE_BINARY=$PWD/build-carry/ropescope build-carry/test_gpu_backend > "$out/test_backend.log" 2>&1
      echo "test_gpu_backend exit $?"
      grep -E "^\[(maps|profile|ec|rope|eh|random|.*noise)|FAILED|PASSED|Failure|Expected|Which is" "$out/test_backend.log" | head -80 ;;
    sanitize)
      filter='Fixtures/CudaMatchesCpu.NllAndHidden/ec:Fixtures/CudaMatchesCpu.NllAndHidden/rope_mha_bias:Fixtures/CudaMatchesCpu.NllAndHidden/eh_tied:CudaMatchesCpuRandom.*:CudaDistanceProfiles.*:CudaAttentionMaps.*:CudaQueryNoise.*'
      for tool in memcheck racecheck; do
        compute-sanitizer --tool $tool --error-exitcode 9 build-carry/test_gpu_backend --gtest_filter="$filter" \
          > "$out/$tool.log" 2>&1
        echo "compute-sanitizer $tool exit $?"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Race reported|Invalid" "$out/$tool.log" | sort | uniq -c | head -8
      done
      compute-sanitizer --tool memcheck --error-exitcode 9 build-carry/test_gpu_attention > "$out/memcheck_attention.log" 2>&1
      echo "compute-sanitizer memcheck (attention kernels) exit $?"; grep -E "ERROR SUMMARY" "$out/memcheck_attention.log" ;;
    lab)
      build-carry/forward_lab --tokens 4096,32768,65536 --reps 5 --profile 2>&1 | tee "$out/forward_lab.log" | grep -E "^(forward|profile|wrote)" ;;
  esac
done
