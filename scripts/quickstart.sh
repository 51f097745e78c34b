#!/usr/bin/env bash
# The newcomer's one command: install dependencies, build, and run the main job
# on its built-in default: `ropescope decay`, which reproduces Figure 1 of the
# RoPE++ paper (d = 128, base 1e4, D = 0..256) as CSV + JSON + PNG/SVG under out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
mkdir -p out
./build/src/cli/ropescope decay --out out/decay.csv --json out/decay.json --plot out/decay.png --plot out/decay.svg
echo "quickstart: wrote out/decay.csv, out/decay.json, out/decay.png, out/decay.svg" >&2
