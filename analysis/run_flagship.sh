#!/usr/bin/env bash
# The flagship analysis of the three demo models (notebooks-data/models), CPU
# only: every number and every figure comes from the ropescope CLI (figures
# from `ropescope plot`, read from the analysis outputs alone). Writes data
# (CSV/NPY/JSON, each with its sidecar) to notebooks-data/flagship/ and figures
# (PNG + SVG) to notebooks-data/flagship/figures/. About 4 to 10 minutes on 2 cores
# (3 min 43 s measured); `--figures` redraws the figures from the data already
# there (a few seconds).
# Usage: analysis/run_flagship.sh [--figures] [ROPESCOPE=build/src/cli/ropescope]
set -euo pipefail
cd "$(dirname "$0")/.."
figures_only=false
if [[ ${1:-} == --figures ]]; then figures_only=true; shift; fi
R=${1:-${ROPESCOPE:-build/src/cli/ropescope}}
M=notebooks-data/models
F=notebooks-data/flagship
FIG=$F/figures
mkdir -p "$FIG"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
both() {  # both KIND NAME ARGS...: `ropescope plot KIND ARGS...` as NAME.png and NAME.svg
  local kind=$1 name=$2; shift 2
  for ext in png svg; do $R plot "$kind" "$@" --out "$FIG/$name.$ext"; done
}
sidecar() {  # sidecar FILE SOURCES DERIVATION: JSON beside a file this script derives
  printf '{\n  "file": "%s",\n  "sources": "%s",\n  "derivation": "%s",\n  "written_by": "analysis/run_flagship.sh",\n  "git_commit": "%s"\n}\n' \
    "$(basename "$1")" "$2" "$3" "$(git rev-parse HEAD)" > "$1.json"
}

figures() {
  log "figures (ropescope plot)"
  for d in 128 64; do
    both decay decay_d$d $F/decay_d$d.csv --title "Expected attention score by distance, d = $d, base 1e4: discrete sums (thin), integral form (bold)"
  done
  for L in 16 64; do
    both attn attn_ec_$L $F/attn_ec_$L --title "RoPE++ EC demo model, first $L bytes of validation text: real heads beside their imaginary twins"
  done
  for run in ec_512 ec_2048 eh_512; do
    local model=${run%_*} window=${run#*_}
    both profile profile_$run $F/profile_${run}_summary.json \
      --title "$model demo model: attention by distance (window $window); dotted: theory c_re, c_im (right axis)"
    both meandist meandist_$run $F/profile_${run}_summary.json --title "$model demo model: mean attention distance per head (window $window)"
  done
  local ppl="$F/ppl_rope.csv $F/ppl_eh.csv $F/ppl_ec.csv" curves="$F/ppl_rope_curve.csv $F/ppl_eh_curve.csv $F/ppl_ec_curve.csv"
  both ppl ppl_vs_length $ppl --labels RoPE,EH,EC --conditions clean \
    --title "Extrapolation: first 16 KiB of validation text, sliding windows (stride L/2)"
  both ppl ppl_vs_length_scaling $ppl --labels RoPE,EH,EC --conditions clean,linear16,yarn16 \
    --title "Extrapolation with inference-time scaling (linear PI x16, YaRN x16 from 512)"
  both curve loss_by_position $curves --labels RoPE,EH,EC --conditions clean --title "Loss by position in 8192-byte windows (2 windows)"
  both curve loss_by_position_yarn $curves --labels RoPE,EH,EC --conditions clean,yarn16 \
    --title "Loss by position in 8192-byte windows, plain vs YaRN x16"
  both noise noise_ec $F/noise_ec.csv --title "EC demo model: Gaussian noise on one query component"
  both ablation ablation $F/noise_ec.csv $F/ablate_eh.csv --labels EC,EH --title "Real or imaginary heads ablated (16 KiB of validation text)"
}
if $figures_only; then figures; log "done"; exit 0; fi

# Validation text for the sweeps: the first 16 KiB of val.bin (2 windows at 8192).
head -c 16384 notebooks-data/corpus/val.bin > $F/val_16k.bin
sidecar $F/val_16k.bin notebooks-data/corpus/val.bin "first 16384 bytes (head -c 16384)"

log "a. theory (Figure 1 for d = 128; d = 64 as the demo models use it)"
$R decay -d 128 -o $F/decay_d128.csv -q
$R decay -d 64 --log 1:8192:300 -o $F/decay_d64.csv -q

log "b. attention maps of the EC model (layers 1 and 3, first 16 and 64 bytes)"
for L in 16 64; do
  $R attn $M/ec --tokens notebooks-data/corpus/val.bin --bytes --layers 1,3 --length $L -q -o $F/attn_ec_$L
done

log "c. distance profiles (EC at 512 and 2048, EH at 512)"
profile() {  # profile MODEL WINDOW NWINDOWS
  $R profile $M/$1 --tokens notebooks-data/corpus/val.bin --bytes -w $2 --windows $3 -q -o $F/profile_$1_$2
}
profile ec 512 64
profile ec 2048 8
profile eh 512 64

log "d. extrapolation: 128 .. 8192 bytes (16x the training length; stride L/2), plain, linear PI x16, YaRN x16"
for m in rope eh ec; do
  $R ppl $M/$m --tokens $F/val_16k.bin --bytes --lengths 128,256,512,1024,2048,4096,8192 \
    --scaling label=linear16,type=linear,factor=16 --scaling label=yarn16,type=yarn,factor=16,original=512 \
    --curve 8192 --max-windows 2 -q -o $F/ppl_$m > /dev/null
done

log "e. noise on real / imaginary queries (EC) and head ablation (EC, EH) at 512 and 2048"
$R ppl $M/ec --tokens $F/val_16k.bin --bytes --lengths 512,2048 --noise-real 0.5,1,2 --noise-imag 0.5,1,2 \
  --ablate real --ablate imaginary -q -o $F/noise_ec > /dev/null
$R ppl $M/eh --tokens $F/val_16k.bin --bytes --lengths 512,2048 --ablate real --ablate imaginary -q -o $F/ablate_eh > /dev/null
figures
log "done"
