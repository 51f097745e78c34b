#!/usr/bin/env bash
# The flagship analysis of the BPE demo models (issue 17): for each model set (a
# directory holding rope/, eh/ and ec/, one per training seed), perplexity vs
# length to 16x the training length on the first 1 MiB of the test split (plain,
# linear PI x16, dynamic NTK x16, YaRN x16), loss by position, distance profiles
# real vs imaginary at 1x and 4x the training length, and the noise and ablation
# experiments; then figures with `ropescope plot`. Every number comes from the
# ropescope CLI; each output has its JSON sidecar (tool version, commit, model,
# arguments, backend and precision path).
#
# Time: the long windows dominate. Measured on 2 CPU cores for EC, the costliest
# model: 0.72 ms a token at L = 1024 and 3.3 ms at L = 16384 (32768 tokens each).
# Estimated from those, not yet run whole: about 6 hours a model set on 2 cores,
# most of it in section a; `--device auto` takes the GPU when there is one.
# DEVICE=cpu|cuda|auto (default auto).
# `--figures` redraws the figures from the data already there (seconds); `--data` computes
# the data only (for a machine without gnuplot, e.g. the GPU machine; then --figures here).
# ROPESCOPE_COMMIT names the commit in the sidecars when the tree is not that commit's checkout.
#
# Outputs: notebooks-data/flagship-bpe/SET/ (data) and .../SET/figures/ (PNG + SVG),
# SET = the model set's directory name.
# Usage: analysis/run_flagship_bpe.sh [--figures | --data] [SET_DIR ...]   (default: notebooks-data/models-bpe)
#        ROPESCOPE=build/src/cli/ropescope DEVICE=auto
set -euo pipefail
cd "$(dirname "$0")/.."
figures_only=false data_only=false
if [[ ${1:-} == --figures ]]; then figures_only=true; shift; fi
if [[ ${1:-} == --data ]]; then data_only=true; shift; fi
R=${ROPESCOPE:-build/src/cli/ropescope}
DEVICE=${DEVICE:-auto}
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(notebooks-data/models-bpe)
TEST=notebooks-data/corpus-bpe/test.txt
COMMIT=${ROPESCOPE_COMMIT:-$(git rev-parse HEAD)}
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
sidecar() {  # sidecar FILE SOURCES DERIVATION: JSON beside a file this script derives
  printf '{\n  "file": "%s",\n  "sources": "%s",\n  "derivation": "%s",\n  "written_by": "analysis/run_flagship_bpe.sh",\n  "git_commit": "%s"\n}\n' \
    "$(basename "$1")" "$2" "$3" "$COMMIT" > "$1.json"
}
# cut FILE BYTES OUT: the first BYTES of FILE, to the end of that line (whole UTF-8 characters).
cut_text() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
end = data.index(b"\n", int(sys.argv[2])) + 1
open(sys.argv[3], "wb").write(data[:end])
PY
  sidecar "$3" "$1" "the first $2 bytes, to the end of that line"
}

figures() {  # figures F: redraw every figure of one set from its data
  local F=$1 FIG=$1/figures
  mkdir -p "$FIG"
  both() { local kind=$1 name=$2; shift 2; for ext in png svg; do $R plot "$kind" "$@" --out "$FIG/$name.$ext"; done; }
  local ppl="$F/ppl_rope.csv $F/ppl_eh.csv $F/ppl_ec.csv" curves="$F/ppl_rope_curve.csv $F/ppl_eh_curve.csv $F/ppl_ec_curve.csv"
  both ppl ppl_vs_length $ppl --labels RoPE,EH,EC --conditions clean \
    --title "BPE models, training length 1024: perplexity vs window length (1 MiB of test text, stride L)"
  for c in linear16 ntk16 yarn16; do
    both ppl ppl_vs_length_$c $ppl --labels RoPE,EH,EC --conditions clean,$c \
      --title "BPE models: plain vs $c at inference (1 MiB of test text)"
  done
  both curve loss_by_position $curves --labels RoPE,EH,EC --conditions clean,yarn16 \
    --title "BPE models: loss by position in 16384-token windows, plain vs YaRN x16"
  for run in ec_1024 ec_4096 eh_1024 eh_4096; do
    local model=${run%_*} window=${run#*_}
    both profile profile_$run $F/profile_${run}_summary.json \
      --title "BPE $model model: attention by distance (window $window); dotted: theory c_re, c_im (right axis)"
    both meandist meandist_$run $F/profile_${run}_summary.json \
      --title "BPE $model model: mean attention distance per head (window $window)"
  done
  both noise noise_ec $F/noise_ec.csv --title "BPE EC model: Gaussian noise on one query component (256 KiB of test text)"
  both ablation ablation $F/noise_ec.csv $F/ablate_eh.csv --labels EC,EH \
    --title "BPE models: real or imaginary heads ablated (256 KiB of test text)"
}

for M in "${sets[@]}"; do
  F=notebooks-data/flagship-bpe/$(basename "$M")
  if $figures_only; then log "figures of $F"; figures "$F"; continue; fi
  mkdir -p "$F"
  for m in rope eh ec; do [ -f "$M/$m/config.json" ] || { echo "$M/$m: no model there" >&2; exit 1; }; done
  cut_text $TEST 1048576 "$F/test_1m.txt"
  cut_text $TEST 262144 "$F/test_256k.txt"

  log "$M: a. perplexity vs length, 1024 .. 16384 tokens (stride L), plain, linear PI, dynamic NTK, YaRN (x16)"
  for m in rope eh ec; do
    $R ppl "$M/$m" --text "$F/test_1m.txt" --device "$DEVICE" --lengths 1024,2048,4096,8192,16384 --stride-fraction 1 \
      --scaling label=linear16,type=linear,factor=16 --scaling label=ntk16,type=dynamic,factor=16 \
      --scaling label=yarn16,type=yarn,factor=16,original=1024 \
      --curve 16384 --max-windows 4 -q -o "$F/ppl_$m" > /dev/null
  done

  log "$M: b. distance profiles, EC and EH, at 1024 (64 windows) and 4096 (16 windows)"
  for m in ec eh; do
    $R profile "$M/$m" --text "$F/test_1m.txt" --device "$DEVICE" -w 1024 --windows 64 -q -o "$F/profile_${m}_1024"
    $R profile "$M/$m" --text "$F/test_1m.txt" --device "$DEVICE" -w 4096 --windows 16 -q -o "$F/profile_${m}_4096"
  done

  log "$M: c. noise on real / imaginary queries (EC) and head ablation (EC, EH), at 1024 and 4096"
  $R ppl "$M/ec" --text "$F/test_256k.txt" --device "$DEVICE" --lengths 1024,4096 --noise-real 0.5,1,2 --noise-imag 0.5,1,2 \
    --ablate real --ablate imaginary -q -o "$F/noise_ec" > /dev/null
  $R ppl "$M/eh" --text "$F/test_256k.txt" --device "$DEVICE" --lengths 1024,4096 --ablate real --ablate imaginary \
    -q -o "$F/ablate_eh" > /dev/null
  $data_only || figures "$F"
done
log "done"
