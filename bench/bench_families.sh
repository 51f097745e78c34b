#!/usr/bin/env bash
# CPU forward throughput of every architecture family against HF transformers'
# own CPU float32 forward (SDPA where the class supports it), same run, one
# small shape each (bench/make_arch_bench_models.py: hidden 256, 4 layers,
# 4/2 heads, d 64, MLP 768, vocab 1024, windows 128).
#   bench/bench_families.sh [PYTHON] [TOKENS] [THREADS]
# PYTHON must have tests/reference/requirements-oracle.txt installed
# (default /work/oracle-venv/bin/python or $ROPESCOPE_ORACLE_PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-${ROPESCOPE_ORACLE_PYTHON:-/work/oracle-venv/bin/python}}
tokens=${2:-512}
threads=${3:-2}
models=$(mktemp -d)
trap 'rm -rf "$models"' EXIT
"$python" bench/make_arch_bench_models.py "$models" >/dev/null
for dir in "$models"/*/; do
  build/bench/bench_forward --model "$dir" --tokens "$tokens" --threads "$threads" --repeats 3 \
    --baseline transformers --python "$python" | tail -n 2
done
