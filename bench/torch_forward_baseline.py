#!/usr/bin/env python3
"""PyTorch CPU baseline for the forward-pass benchmark.

  python3 bench/torch_forward_baseline.py MODEL_DIR --tokens T --threads 2 --repeats N
  python3 bench/torch_forward_baseline.py --make-model DIR

Loads MODEL_DIR with tests/reference/torch_reference.py in float32 "fast" mode
(attention through torch.nn.functional.scaled_dot_product_attention with
is_causal=True, GQA via enable_gqa; RoPE++ heads interleaved as in the
reference), sets torch.set_num_threads(threads), and under
torch.inference_mode() runs the full forward (embeddings .. logits) on seeded
random tokens [1, T]: one warm-up, then N timed runs. Prints one JSON line:
{"tokens_per_s", "seconds" (median of the timed runs), "T", "threads", "torch"}
plus "seconds_min", "repeats", "variant".

--make-model DIR writes the benchmark model (HF layout, deterministic, fp32):
RoPE++ EC, hidden 256, 4 layers, 4 q / 2 kv heads, head_dim 64, intermediate
768, vocab 256 (about 3.5 M parameters, 14 MB).
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", nargs="?")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--make-model", metavar="DIR")
    args = ap.parse_args()

    import torch

    if args.make_model:
        import make_fixtures

        make_fixtures.write_bench_model(args.make_model)
        if not args.model_dir:
            return
    if not args.model_dir:
        ap.error("MODEL_DIR is required (or --make-model DIR)")
    import torch_reference as ref

    torch.set_num_threads(args.threads)
    model = ref.Reference(args.model_dir, dtype=torch.float32, fast=True)
    g = torch.Generator().manual_seed(args.seed)
    tokens = torch.randint(0, model.cfg.vocab_size, (1, args.tokens), generator=g)
    times = []
    with torch.inference_mode():
        model.forward(tokens)  # warm-up
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.forward(tokens)
            times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    print(json.dumps({"tokens_per_s": args.tokens / sec, "seconds": sec, "T": args.tokens, "threads": args.threads,
                      "torch": torch.__version__, "seconds_min": min(times), "repeats": args.repeats,
                      "variant": model.variant}))


if __name__ == "__main__":
    main()
