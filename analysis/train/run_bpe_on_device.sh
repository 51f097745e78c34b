#!/usr/bin/env bash
# Device-side driver for the BPE demo models (issue 17): unpacks the carried train
# token shards (build-corpus/shards/, see analysis/corpus/pack_train_tokens.py: it uses
# shards 000.. up to the first missing one), then trains the variants in one single pass over those tokens with
# analysis/train/train_demo.py and leaves at most 8 files in $OUT:
# per seed, seed-N_{variant}_model.safetensors (bf16, <= 12 MB), and small.tar holding
# seed-N/{cards.json, train.log, {variant}_config.json}.
# Model: hidden 192, 6 layers, 4 query / 2 KV heads of 64, MLP 448, tied embeddings,
# vocab 16384 (tokenizer.json), training length 1024.
# Usage (repo root, through the `run` tool, carrying build-corpus/shards: 56 MB, so the call must
# come from a checkout whose tracked tree is under 8 MB, e.g. a local branch without notebooks-data's
# large files; the limit is 64 MiB a call):
#   bash analysis/train/run_bpe_on_device.sh unpack    # only unpack and report the shards present
#   [SEEDS="1234 2"] bash analysis/train/run_bpe_on_device.sh [VARIANTS=rope,eh,ec] [extra trainer args, e.g. --bench 30]
# Then here, per seed: tar xf FILES_AT/small.tar; mv FILES_AT/seed-N_*_model.safetensors into seed-N/ (dropping the prefix);
#            analysis/train/install_models.py seed-N notebooks-data/models-bpe notebooks-data/corpus-bpe/tokenizer.json
#            MODELS=notebooks-data/models-bpe analysis/check_demo_models.sh
set -euo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:?OUT must name the output folder}
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
python3 analysis/corpus/pack_train_tokens.py unpack
[ "${1:-}" = unpack ] && exit 0
variants=${1:-rope,eh,ec}
shift || true
# One trainer run per seed (SEEDS, default "1234"), one after the other: two side by side
# on the one GPU took 94 ms a step each against 31 alone. Each writes $out/seed-N/;
# afterwards the checkpoints stay as $out/seed-N_{variant}_model.safetensors and the small
# files go into $out/small.tar (a call returns at most 8 files). About 270 s a seed on an H200.
status=0
for seed in ${SEEDS:-1234}; do
  mkdir -p "$out/seed-$seed"
  python3 analysis/train/train_demo.py --data u16 --tokenizer notebooks-data/corpus-bpe/tokenizer.json \
    --train build-corpus/train.tok.u16 --val build-corpus/validation.tok.u16 --holdout 0.02 \
    --corpus "notebooks-data/corpus-bpe (Debian documentation, see corpus.json; tokenizer.json)" \
    --variants "$variants" --single-pass --steps 0 --seq 1024 --batch 32 \
    --hidden 192 --layers 6 --mlp 448 --tie --lr 2e-3 --warmup 100 --log-every 50 --eval-every 250 \
    --seed "$seed" --out "$out/seed-$seed" "$@" > "$out/seed-$seed/train.log" 2>&1 || status=1
done
cd "$out"
for d in seed-*; do
  tail -n 4 "$d/train.log"
  for f in "$d"/*_model.safetensors; do mv "$f" "${d}_$(basename "$f")"; done
done
tar cf small.tar seed-*/
rm -rf seed-*/
exit $status
