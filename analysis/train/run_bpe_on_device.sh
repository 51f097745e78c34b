#!/usr/bin/env bash
# Device-side driver for the BPE demo models (issue 17): unpacks the train token
# shards that earlier calls carried to this machine (build-corpus/shards/, see
# analysis/corpus/pack_train_tokens.py: it uses shards 000.. up to the first
# missing one), then trains the variants in one single pass over those tokens with
# analysis/train/train_demo.py and leaves at most 8 files in $OUT:
# {variant}_config.json, {variant}_model.safetensors (bf16, <= 12 MB), cards.json, train.log.
# Model: hidden 192, 6 layers, 4 query / 2 KV heads of 64, MLP 448, tied embeddings,
# vocab 16384 (tokenizer.json), training length 1024.
# Usage (repo root, through the `run` tool; the shards first, one call each, carrying
# build-corpus/shards/train-00K.tok.u16.xz, the first call also validation.tok.u16.xz):
#   bash analysis/train/run_bpe_on_device.sh unpack    # only unpack and report the shards present
#   bash analysis/train/run_bpe_on_device.sh [VARIANTS=rope,eh,ec] [extra trainer args, e.g. --seed 2 or --bench 30]
# Then here: analysis/train/install_models.py FILES_AT notebooks-data/models-bpe notebooks-data/corpus-bpe/tokenizer.json
#            MODELS=notebooks-data/models-bpe analysis/check_demo_models.sh
set -euo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:?OUT must name the output folder}
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
python3 analysis/corpus/pack_train_tokens.py unpack
[ "${1:-}" = unpack ] && exit 0
variants=${1:-rope,eh,ec}
shift || true
python3 analysis/train/train_demo.py --data u16 --tokenizer notebooks-data/corpus-bpe/tokenizer.json \
  --train build-corpus/train.tok.u16 --val build-corpus/validation.tok.u16 \
  --corpus "notebooks-data/corpus-bpe (Debian documentation, see corpus.json; tokenizer.json)" \
  --variants "$variants" --single-pass --steps 0 --seq 1024 --batch 32 \
  --hidden 192 --layers 6 --mlp 448 --tie --lr 2e-3 --warmup 100 --log-every 50 --eval-every 250 \
  --out "$out" "$@" 2>&1 | tee "$out/train.log"
