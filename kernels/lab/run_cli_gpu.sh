#!/usr/bin/env bash
# The CLI's model analyses on both backends on the GPU machine: `ropescope
# profile`, `attn` and `ppl` (with query noise) on the EC demo model, once
# with --device cpu and once with --device cuda, and the largest differences
# between the two (kernels/lab/compare_cli_runs.py). Binaries from build-carry/.
# Logs and outputs go to $OUT (or ./lab-out).
set -euo pipefail
out=${OUT:-lab-out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$PWD/build-carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
rs=build-carry/ropescope
model=notebooks-data/models/ec
work=$(mktemp -d)
text=$work/text.bin
head -c 65536 notebooks-data/corpus/val.bin > $text  # the first 64 KiB of the validation text
for dev in cpu cuda; do
  /usr/bin/time -f "$dev profile %e s" $rs profile $model --tokens $text --bytes --window 2048 --windows 8 --device $dev -q --out $work/profile_$dev
  /usr/bin/time -f "$dev attn %e s" $rs attn $model --tokens $text --bytes --start 1000 --length 64 --full-rows --scores --device $dev -q --out $work/attn_$dev
  /usr/bin/time -f "$dev ppl %e s" $rs ppl $model --tokens $text --bytes --lengths 512,2048 --noise-imag 0.5 --noise-real 0.5 --seed 3 --device $dev -q --out $work/ppl_$dev
done 2>&1 | tee "$out/cli_times.txt"
python3 kernels/lab/compare_cli_runs.py $work | tee "$out/cli_compare.txt"
cp $work/profile_cuda.csv.json $work/ppl_cuda.csv.json "$out/" 2>/dev/null || true
