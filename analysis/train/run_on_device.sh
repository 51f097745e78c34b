#!/usr/bin/env bash
# Device-side driver for the demo models: trains RoPE, RoPE++ EH and RoPE++ EC
# in one call (analysis/train/train_demo.py) and leaves exactly 8 files in $OUT:
# {rope,eh,ec}_config.json, {rope,eh,ec}_model.safetensors, cards.json, train.log.
# Usage (from the repo root, through the `run` tool, carrying
# notebooks-data/corpus/train.bin):  bash analysis/train/run_on_device.sh [STEPS] [extra trainer args]
#        bash analysis/train/run_on_device.sh bench   # times 30 steps per model, saves nothing
set -euo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:?OUT must name the output folder}
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
if [ "${1:-}" = bench ]; then
  shift
  python3 analysis/train/train_demo.py --bench 30 --out "$out" "$@" 2>&1 | tee "$out/train.log"
else
  steps=${1:-5000}
  shift || true
  python3 analysis/train/train_demo.py --steps "$steps" --out "$out" "$@" 2>&1 | tee "$out/train.log"
fi
