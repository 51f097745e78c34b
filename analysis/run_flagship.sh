#!/usr/bin/env bash
# The flagship analysis of the three demo models (notebooks-data/models), CPU
# only: every number comes from the ropescope CLI, every figure from the
# gnuplot scripts in analysis/plots/. Writes data (CSV/NPY/JSON, each with its
# sidecar) to notebooks-data/flagship/ and figures (PNG + SVG) to
# notebooks-data/flagship/figures/. About 4 minutes on 2 cores (3 min 43 s measured).
# Usage: analysis/run_flagship.sh [ROPESCOPE=build-h7/src/cli/ropescope]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-${ROPESCOPE:-build-h7/src/cli/ropescope}}
M=notebooks-data/models
F=notebooks-data/flagship
FIG=$F/figures
P=analysis/plots
mkdir -p "$FIG"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
both() {  # both SCRIPT NAME VARS: the figure as NAME.png and NAME.svg
  for ext in png svg; do gnuplot -e "$3; out='$FIG/$2.$ext'" "$P/$1"; done
}
sidecar() {  # sidecar FILE SOURCES DERIVATION: JSON beside a file this script derives
  printf '{\n  "file": "%s",\n  "sources": "%s",\n  "derivation": "%s",\n  "written_by": "analysis/run_flagship.sh",\n  "git_commit": "%s"\n}\n' \
    "$(basename "$1")" "$2" "$3" "$(git rev-parse HEAD)" > "$1.json"
}

# Validation text for the sweeps: the first 16 KiB of val.bin (2 windows at 8192).
head -c 16384 notebooks-data/corpus/val.bin > $F/val_16k.bin
sidecar $F/val_16k.bin notebooks-data/corpus/val.bin "first 16384 bytes (head -c 16384)"

log "a. theory (Figure 1 for d = 128; d = 64 as the demo models use it)"
$R decay -d 128 -o $F/decay_d128.csv --plot $FIG/decay_d128.png --plot $FIG/decay_d128.svg -q
$R decay -d 64 --log 1:8192:300 -o $F/decay_d64.csv --plot $FIG/decay_d64.png --plot $FIG/decay_d64.svg -q

log "b. attention maps of the EC model (layers 1 and 3, first 16 and 64 bytes)"
for L in 16 64; do
  $R attn $M/ec --tokens notebooks-data/corpus/val.bin --bytes --layers 1,3 --length $L -q -o $F/attn_ec_$L
  hdr=$((10 + $(od -An -tu2 -j8 -N2 $F/attn_ec_$L/attn_probs.npy)))
  both attn.gp attn_ec_$L "in='$F/attn_ec_$L/attn_probs.npy'; hdr=$hdr; L=$L; nheads=8; layers='1 3'; heads='0 1 2 3'; title='RoPE++ EC demo model, first $L bytes of validation text'"
done

log "c. distance profiles (EC at 512 and 2048, EH at 512)"
profile() {  # profile MODEL WINDOW NWINDOWS
  local pre=$F/profile_$1_$2
  $R profile $M/$1 --tokens notebooks-data/corpus/val.bin --bytes -w $2 --windows $3 -q -o $pre
  # Per layer and kind: mean over heads of mean_prob and mean_score in each distance bin.
  awk -F, 'NR > 1 { k = $1 "," $3 "," $4 "," $5; p[k] += $7; s[k] += $8; n[k]++; if (!(k in o)) { o[k] = ++m; key[m] = k } }
           END { print "layer,kind,bin_lo,bin_hi,distance,mean_prob,mean_score";
                 for (i = 1; i <= m; i++) { k = key[i]; split(k, f, ","); printf "%s,%.6g,%.9g,%.9g\n", k, (f[3] + f[4]) / 2, p[k] / n[k], s[k] / n[k] } }' \
    $pre.csv > ${pre}_layers.csv
  sidecar ${pre}_layers.csv $pre.csv "per (layer, kind, bin): mean over the heads of that kind of mean_prob and mean_score; distance = bin midpoint"
  # Per head: mean distance = sum over bins of midpoint * mean_prob * count / (pairs at D = 0 = queries).
  awk -F, 'NR > 1 { k = $1 "," $2 "," $3; if ($4 == 0) q[k] = $6; d[k] += ($4 + $5) / 2 * $7 * $6; if (!(k in o)) { o[k] = ++m; key[m] = k } }
           END { print "layer,head,kind,mean_distance"; for (i = 1; i <= m; i++) printf "%s,%.6f\n", key[i], d[key[i]] / q[key[i]] }' \
    $pre.csv > ${pre}_meandist.csv
  sidecar ${pre}_meandist.csv $pre.csv "per head: sum over distance bins of midpoint * mean_prob * count / queries (exact for one-distance bins; equals mean_distance of ${pre##*/}_summary.json there)"
  both profile.gp profile_$1_$2 "in='${pre}_layers.csv'; theory='$F/decay_d64.csv'; layers=4; maxd=$2; title='$1 demo model: mean attention probability by distance (window $2, $3 windows); dashed: theory'"
  both meandist.gp meandist_$1_$2 "in='${pre}_meandist.csv'; nheads=$4; title='$1 demo model: mean attention distance per head (window $2)'"
}
profile ec 512 64 8
profile ec 2048 8 8
profile eh 512 64 4

log "d. extrapolation: 128 .. 8192 bytes (16x the training length; stride L/2), plain, linear PI x16, YaRN x16"
for m in rope eh ec; do
  $R ppl $M/$m --tokens $F/val_16k.bin --bytes --lengths 128,256,512,1024,2048,4096,8192 \
    --scaling label=linear16,type=linear,factor=16 --scaling label=yarn16,type=yarn,factor=16,original=512 \
    --curve 8192 --max-windows 2 -q -o $F/ppl_$m > /dev/null
done
files="$F/ppl_rope.csv $F/ppl_eh.csv $F/ppl_ec.csv"
both ppl.gp ppl_vs_length "in='$files'; labels='RoPE EH EC'; conds='clean'; title='Extrapolation: first 16 KiB of validation text, sliding windows (stride L/2)'"
both ppl.gp ppl_vs_length_scaling "in='$files'; labels='RoPE EH EC'; conds='clean linear16 yarn16'; title='Extrapolation with inference-time scaling (linear PI x16, YaRN x16 from 512)'"
curves="$F/ppl_rope_curve.csv $F/ppl_eh_curve.csv $F/ppl_ec_curve.csv"
both curve.gp loss_by_position "in='$curves'; labels='RoPE EH EC'; conds='clean'; title='Loss by position in 8192-byte windows (2 windows)'"
both curve.gp loss_by_position_yarn "in='$curves'; labels='RoPE EH EC'; conds='clean yarn16'; title='Loss by position in 8192-byte windows, plain vs YaRN x16'"

log "e. noise on real / imaginary queries (EC) and head ablation (EC, EH) at 512 and 2048"
$R ppl $M/ec --tokens $F/val_16k.bin --bytes --lengths 512,2048 --noise-real 0.5,1,2 --noise-imag 0.5,1,2 \
  --ablate real --ablate imaginary -q -o $F/noise_ec > /dev/null
$R ppl $M/eh --tokens $F/val_16k.bin --bytes --lengths 512,2048 --ablate real --ablate imaginary -q -o $F/ablate_eh > /dev/null
both noise.gp noise_ec "in='$F/noise_ec.csv'; lengths='512 2048'; title='EC demo model: Gaussian noise on one query component'"
both ppl.gp ablation "in='$F/noise_ec.csv $F/ablate_eh.csv'; labels='EC EH'; conds='clean ablate_real ablate_imag'; title='Real or imaginary heads ablated (16 KiB of validation text)'"
log "done"
