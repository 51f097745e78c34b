"""Tensor parallel over the two GPUs of one host (issue 16), on the two-GPU machine.

A Llama-70B-shaped random checkpoint (hidden 8192, 64 heads, 8 KV heads, MLP 28672, vocab 128256)
with --layers decoder layers instead of 80 (written by transformers on the GPU, bf16), random token
ids, and `ropescope profile -w T` (exact distance profiles) for each T, run two ways in this
invocation: on one GPU (--device cuda) and split over two (--tensor-parallel 2, NCCL). Prints, per T:
tokens per second of each (the backends' own forward time, from the sidecars' backend_statistics,
so loading the weights does not count), the two-GPU time in all-reduces (GPU time of the NCCL
kernels, waiting for the other rank included) as a fraction of the forward, and the largest
difference between the two profiles (|a - b| / max(1, |a|): bf16 roundings move with the split).
With 80 layers the per-layer work and the all-reduces scale by 80 / layers; the LM head and the
embedding do not.

Usage: python3 bench/gpu_tensor_parallel.py --bin DIR [--layers 4] [--lengths 32768,131072]
       (DIR holds the CUDA build's ropescope and lib/); raw output in $OUT/gpu_tensor_parallel.log.
"""
import argparse
import csv
import json
import os
import shutil
import sys
import time

import numpy as np
import torch
import transformers

from gpu_data_parallel import largest_difference
from gpu_targets import run


def write_checkpoint(path, layers, log):
    config = transformers.LlamaConfig(vocab_size=128256, hidden_size=8192, intermediate_size=28672,
                                      num_hidden_layers=layers, num_attention_heads=64, num_key_value_heads=8,
                                      rope_theta=500000.0, max_position_embeddings=131072, rms_norm_eps=1e-5,
                                      tie_word_embeddings=False)
    t0 = time.time()
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    shutil.rmtree(path, ignore_errors=True)
    model.save_pretrained(path)
    params = sum(p.numel() for p in model.parameters())
    log.write(f"wrote {path}: {params} parameters in {time.time() - t0:.1f} s\n")
    del model
    torch.cuda.empty_cache()
    return params


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--lengths", default="32768,131072")
    ap.add_argument("--work", default="/tmp/tp")
    args = ap.parse_args()
    out = os.environ.get("OUT", ".")
    log = open(os.path.join(out, "gpu_tensor_parallel.log"), "w")
    if torch.cuda.device_count() < 2:
        sys.exit(f"needs two GPUs, this machine has {torch.cuda.device_count()}")
    os.makedirs(args.work, exist_ok=True)
    ckpt = os.path.join(args.work, "llama70b_shape")
    params = write_checkpoint(ckpt, args.layers, log)
    ropescope = os.path.join(args.bin, "ropescope")
    rng = np.random.default_rng(70)
    print(f"Llama-70B shape with {args.layers} of 80 layers ({params / 1e9:.2f} B parameters), ropescope profile")
    print("| T | 1 GPU tok/s | 2 GPUs (TP) tok/s | ratio | all-reduce share of the TP forward | profiles, largest difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for T in (int(t) for t in args.lengths.split(",")):
        tokens = os.path.join(args.work, f"tokens_{T}.npy")
        np.save(tokens, rng.integers(0, 128256, T, dtype=np.int32))
        stats, prefixes = {}, {}
        for name, extra in (("one", []), ("tp2", ["--tensor-parallel", "2"])):
            prefixes[name] = os.path.join(args.work, f"profile_{name}_{T}")
            t0 = time.perf_counter()
            run([ropescope, "profile", ckpt, "--tokens", tokens, "-w", str(T), "--device", "cuda", *extra, "-q", "-o",
                 prefixes[name]], log)
            sidecar = json.load(open(prefixes[name] + ".csv.json"))
            stats[name] = sidecar["backend_statistics"]
            log.write(f"T={T} {name}: wall {time.perf_counter() - t0:.1f} s, backend {sidecar['backend']}, "
                      f"statistics {json.dumps(stats[name])}\n")
        one, two = stats["one"]["forward_seconds"], stats["tp2"]["forward_seconds"]
        share = max(stats["tp2"].get("all_reduce_seconds", [float("nan")])) / two
        rows = [list(csv.reader(open(p + ".csv"))) for p in prefixes.values()]
        summaries = [json.load(open(p + "_summary.json")) for p in prefixes.values()]
        worst = max(largest_difference(*rows), largest_difference(*summaries))
        print(f"| {T} | {T / one:,.0f} | {T / two:,.0f} | {one / two:.2f}x | {100 * share:.1f} % | {worst:.2g} |")
        log.flush()


if __name__ == "__main__":
    main()
