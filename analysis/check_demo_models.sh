#!/usr/bin/env bash
# Checks ropescope against the trainer: for each demo model, `ropescope ppl` on
# the validation text at L = 512, stride 512 must give the validation loss the
# trainer recorded in card.json (same windows: non-overlapping 512-byte windows,
# the first scoring targets 1..511, a tail window scoring only what is past the
# previous window). The trainer evaluated the saved bf16 weights in float32
# (PyTorch on the GPU, TF32 matmuls allowed), ropescope converts the same bf16
# weights to float32 exactly and computes on the CPU, so the two differ only by
# rounding in different operation orders: measured 3-5e-6 nats. Tolerance 0.01
# nats: the scale of a bf16-vs-float32 evaluation difference (card.json also
# records the trainer's bf16-autocast loss), far above that rounding.
# The BPE models of issue 17 (a tokenizer.json beside each checkpoint) are checked the
# same way on notebooks-data/corpus-bpe/validation.txt, tokenized by ropescope, at L = 1024.
# Writes MODELS/check.csv; exits 1 on a mismatch.
# Usage: [MODELS=notebooks-data/models] analysis/check_demo_models.sh [ROPESCOPE=build/src/cli/ropescope]
set -euo pipefail
cd "$(dirname "$0")/.."
rs=${1:-${ROPESCOPE:-build/src/cli/ropescope}}
tol=0.01
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
models=${MODELS:-notebooks-data/models}
if [ -f "$models/rope/tokenizer.json" ]; then
  input=(--text notebooks-data/corpus-bpe/validation.txt) L=1024
else
  input=(--tokens notebooks-data/corpus/val.bin --bytes) L=512
fi
out=$models/check.csv
echo "model,trainer_nll,trainer_tokens,ropescope_nll,ropescope_tokens,abs_diff,tolerance,pass" > "$tmp/check.csv"
fail=0
for m in rope eh ec; do
  "$rs" ppl "$models/$m" "${input[@]}" --lengths $L --stride $L -q -o "$tmp/$m" > /dev/null
  line=$(python3 - "$tmp/$m.csv" "$models/$m/card.json" "$tol" <<'PY'
import csv, json, sys
row = next(csv.DictReader(open(sys.argv[1])))
card = json.load(open(sys.argv[2]))["eval"]
tol = float(sys.argv[3])
a, b = card["validation_nll"], float(row["mean_nll"])
ok = abs(a - b) <= tol and int(row["tokens_scored"]) == card["validation_tokens_scored"]
print(f"{a:.8f},{card['validation_tokens_scored']},{b:.8f},{row['tokens_scored']},{abs(a - b):.2e},{tol},{'yes' if ok else 'NO'}")
PY
)
  echo "$m,$line" >> "$tmp/check.csv"
  case $line in *,NO) fail=1 ;; esac
done
cp "$tmp/check.csv" "$out"
column -s, -t < "$out"
if [ $fail -ne 0 ]; then echo "MISMATCH between ropescope and the trainer" >&2; exit 1; fi
echo "ropescope agrees with the trainer within $tol nats"
