#!/usr/bin/env python3
"""HF transformers CPU baseline for any architecture directory (tokens/s of a forward with loss).

  python bench/torch_arch_cpu_baseline.py MODEL_DIR --tokens N --threads K --repeat R [--seed S]

Needs the environment of tests/reference/requirements-oracle.txt. Loads MODEL_DIR with
AutoModelForCausalLM.from_pretrained(dtype=float32, attn_implementation="sdpa"); if the model
class does not support SDPA (e.g. gemma2, whose attention softcap is eager-only) it falls back to
"eager" and says so in the output. MoE models get experts_implementation="eager". Sets
torch.set_num_threads(K), draws N seeded random token ids in [0, vocab), and under
torch.inference_mode() runs model(ids, labels=ids) (logits + cross-entropy): one warm-up, then R
timed runs. Prints one JSON line:
  {"tokens_per_s" (N / best seconds), "attn_implementation", "seconds" (all R timings),
   "tokens", "threads", "model_type", "transformers", "torch"}
"""

import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    cfg = AutoConfig.from_pretrained(args.model_dir)
    extra = {"experts_implementation": "eager"} if "moe" in cfg.model_type else {}
    attn = "sdpa"
    try:
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32,
                                                     attn_implementation=attn, **extra)
    except (ValueError, NotImplementedError):
        attn = "eager"
        model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32,
                                                     attn_implementation=attn, **extra)
    model.eval()
    attn = model.config._attn_implementation or attn
    vocab = cfg.get_text_config().vocab_size
    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, vocab, (1, args.tokens), generator=g)
    times = []
    with torch.inference_mode():
        model(ids, labels=ids)  # warm-up
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = model(ids, labels=ids)
            float(out.loss)
            times.append(time.perf_counter() - t0)
    print(json.dumps({"tokens_per_s": args.tokens / min(times), "attn_implementation": attn,
                      "seconds": times, "tokens": args.tokens, "threads": args.threads,
                      "model_type": cfg.model_type, "transformers": transformers.__version__,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
