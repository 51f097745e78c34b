#!/usr/bin/env python3
"""Copies the flat outputs of analysis/train/run_on_device.sh or run_bpe_on_device.sh
(a folder holding {rope,eh,ec}_config.json, {rope,eh,ec}_model.safetensors,
cards.json and train.log) into DEST/{rope,eh,ec}/ as HF model directories, each
with card.json (its data card) and README.md (the same, readable); with TOKENIZER
(the BPE models) also tokenizer.json.
Usage: install_models.py FLAT_DIR [DEST=notebooks-data/models] [TOKENIZER]"""
import json
import os
import shutil
import sys

NAMES = {"rope": "RoPE", "eh": "RoPE++ EH (equal heads, imag1)", "ec": "RoPE++ EC (equal cache, imag2)"}

src = sys.argv[1]
dest = sys.argv[2] if len(sys.argv) > 2 else "notebooks-data/models"
tokenizer = sys.argv[3] if len(sys.argv) > 3 else None
cards = json.load(open(os.path.join(src, "cards.json")))
os.makedirs(dest, exist_ok=True)
shutil.copyfile(os.path.join(src, "train.log"), os.path.join(dest, "train.log"))
for m in cards["models"]:
    v = m["variant"]
    d = os.path.join(dest, v)
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(os.path.join(src, f"{v}_config.json"), os.path.join(d, "config.json"))
    shutil.copyfile(os.path.join(src, f"{v}_model.safetensors"), os.path.join(d, "model.safetensors"))
    if tokenizer:
        shutil.copyfile(tokenizer, os.path.join(d, "tokenizer.json"))
    card = {k: cards[k] for k in ("corpus", "device", "torch", "seed", "hyperparameters")}
    card.update(m)
    driver = "run_bpe_on_device.sh" if tokenizer else "run_on_device.sh"
    card["recipe"] = f"analysis/train/train_demo.py via analysis/train/{driver}; full log in ../train.log"
    with open(os.path.join(d, "card.json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    cfg = json.load(open(os.path.join(d, "config.json")))
    e, h = m["eval"], cards["hyperparameters"]
    u = "token" if tokenizer else "byte"
    kind = (f"BPE (vocab {cfg['vocab_size']}, `tokenizer.json` beside it)" if tokenizer else "Byte-level (vocab 256)")
    corpus = ("Debian 12 documentation packages, split by document (`../../corpus-bpe/corpus.json`)" if tokenizer
              else "python3.11-doc reStructuredText sources, split by document (`../../corpus/corpus.json`)")
    if tokenizer:
        gap = (f"Every train token was seen once ({m['epochs_of_train_bin']:.2f} passes). Memorisation, measured on "
               f"documents of the same train split held out before training: their loss is "
               f"{100 * (e['holdout_nll'] / e['train_sample_nll'] - 1):.1f}% above the train sample's. The validation "
               f"split's is {100 * (e['validation_nll'] / e['train_sample_nll'] - 1):.1f}% above it: a difference of "
               f"composition (172 documents, one of them 21% of its tokens), not of fit.")
        train_rows = (f"| train loss ({e['train_sample_definition']}) | {e['train_sample_nll']:.4f} nats/{u} |\n"
                      f"| held-out train documents ({e['holdout_definition']}) | {e['holdout_nll']:.4f} nats/{u} |")
    else:
        gap = (f"The gap between train and validation loss is overfitting to a 10.5 MB corpus "
               f"seen {m['epochs_of_train_bin']:.1f} times.")
        train_rows = (f"| train loss (same windows, on the first slice of the train split as long as the validation "
                      f"split) | {e[f'train_nll_first_val_size_{u}s']:.4f} nats/{u} |")
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write(f"""# Demo model: {NAMES[v]}

{kind} HF Llama checkpoint, bf16, {m['parameters']:,} parameters; a demo for ropescope's
analyses, not a useful language model. Trained by `analysis/train/train_demo.py` (written from ROPEPP.md),
with the same seed ({cards['seed']}), data order, size and budget as its two siblings in `../`.

| | |
| --- | --- |
| layout | hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, config heads {cfg['num_attention_heads']} query / {cfg['num_key_value_heads']} KV, head dim {cfg['head_dim']}, MLP {cfg['intermediate_size']}, {'tied' if cfg['tie_word_embeddings'] else 'untied'} embeddings, `rope_config` {json.dumps(cfg['rope_config'])} |
| RoPE | base {cfg['rope_theta']:g}, training length {h['seq']} (`max_position_embeddings` {cfg['max_position_embeddings']}) |
| corpus | {corpus} |
| training | {m['steps']} steps x batch {h['batch']} x {h['seq']} = {m['tokens_seen']:,} tokens ({m['epochs_of_train_bin']:.2f} passes over the train split), AdamW (betas 0.9/0.95, wd {h['wd']}), lr {h['lr']} with {h['warmup']} warm-up steps then cosine to {h['min_lr_ratio']}x, grad clip 1.0, bf16 autocast |
| wall time | {m['wall_time_s']} s on {cards['device']} ({m['tokens_per_s']:,} tokens/s, torch {cards['torch']}) |
| validation loss | {e['validation_nll']:.4f} nats/{u} = {e[f'validation_bits_per_{u}']:.4f} bits/{u} ({e['validation_tokens_scored']:,} {u}s scored, {e['validation_windows']} windows of {h['seq']}) |
{train_rows}
| running train loss (last {h['log_every']} steps) | {m['final_train_loss_running']:.4f} |

The losses are measured on the saved bf16 weights in float32 with ropescope's window rule (`ppl --lengths {h['seq']}
--stride {h['seq']}`); `analysis/check_demo_models.sh` checks ropescope against them. {gap}
""")
print("installed", [m["variant"] for m in cards["models"]], "into", dest)
