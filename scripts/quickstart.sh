#!/usr/bin/env bash
# The newcomer's one command: install dependencies, build, and show the main
# job on built-in defaults, everything under out/:
#  1. `ropescope decay`: Figure 1 of the RoPE++ paper (d = 128, base 1e4,
#     D = 0..256) as CSV + JSON + PNG/SVG;
#  2. the three demo checkpoints (notebooks-data/models: RoPE, RoPE++ EH and EC,
#     byte-level, trained at length 512) on 16 KiB of held-out text: distance
#     profiles of the EC model's real vs imaginary heads, and perplexity at
#     256 .. 2048 tokens (beyond the training length), each drawn with
#     `ropescope plot`. On the CPU this takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
mkdir -p out
rs=./build/src/cli/ropescope
text=notebooks-data/flagship/val_16k.bin
models=notebooks-data/models
$rs decay --out out/decay.csv --json out/decay.json --plot out/decay.png --plot out/decay.svg
$rs profile $models/ec --tokens $text --bytes --window 512 --windows 8 --device cpu --quiet --out out/profile_ec
$rs plot profile out/profile_ec_summary.json --labels EC --out out/profile_ec.png
for m in rope eh ec; do
  $rs ppl $models/$m --tokens $text --bytes --lengths 256,512,1024,2048 --device cpu --quiet --out out/ppl_$m
done
$rs plot ppl out/ppl_rope.csv out/ppl_eh.csv out/ppl_ec.csv --labels RoPE,EH,EC --out out/ppl.png
echo "quickstart: wrote out/decay.{csv,json,png,svg} (Figure 1), out/profile_ec.png (real vs imaginary attention" \
     "by distance, EC demo model) and out/ppl.png (perplexity beyond the training length 512: RoPE, EH, EC)" >&2
