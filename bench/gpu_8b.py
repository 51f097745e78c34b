"""8B-class speed and memory targets of the CUDA backend (issue 18), one model family per run, on the GPU machine.

Every number is measured in this invocation, ours beside transformers':
  - a random checkpoint of the family's shape is written by transformers itself (its own model class,
    bf16, save_pretrained; weights drawn on the GPU by the class's initialiser);
  - transformers' forward with loss (SDPA attention, bf16, input_ids = labels) at the --torch lengths,
    median of --reps after one warm-up; out-of-memory is reported as such;
  - kernels/lab/forward_lab on the same directory: load to the GPU (GB/s of stored weights, the page
    cache dropped first when the machine lets us, beside the GB/s of plainly reading the files), forward with per-token NLL (tokens/s, fraction of the
    measured bf16 matmul peak for the dense-causal FLOP count), exact distance profiles (ratio to the
    forward), device memory in use after each run;
  - for a family with a sliding window, the same forward at the longest length with the window removed
    from config.json (same weights), to measure what the window saves.

Usage (binaries from a carry folder holding forward_lab and lib/):
  python3 bench/gpu_8b.py --family llama3_8b [--bin build-carry-X] [--lengths 8192,32768]
                          [--long 131072] [--torch 8192,32768,131072] [--reps 3]
Prints a table last; raw output goes to $OUT/gpu_8b_<family>.log.
"""
import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import time

import torch
import transformers

from gpu_targets import fields, matmul_peak, run  # same folder: the script's own directory is on sys.path

FAMILIES = {
    "llama3_8b": ("LlamaConfig", dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                      rope_theta=500000.0, max_position_embeddings=131072, rms_norm_eps=1e-5)),
    "qwen25_7b": ("Qwen2Config", dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                                      num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                                      rope_theta=1000000.0, max_position_embeddings=131072, rms_norm_eps=1e-6,
                                      use_sliding_window=False)),
    "mistral_7b": ("MistralConfig", dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336,
                                         num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                         sliding_window=4096, rope_theta=10000.0, max_position_embeddings=131072,
                                         rms_norm_eps=1e-5)),
    "gemma2_9b": ("Gemma2Config", dict(vocab_size=256000, hidden_size=3584, intermediate_size=14336,
                                       num_hidden_layers=42, num_attention_heads=16, num_key_value_heads=8,
                                       head_dim=256, sliding_window=4096, attn_logit_softcapping=50.0,
                                       final_logit_softcapping=30.0, query_pre_attn_scalar=256,
                                       max_position_embeddings=131072)),
}


def write_checkpoint(family, path, log):
    name, shape = FAMILIES[family]
    config = getattr(transformers, name)(**shape, tie_word_embeddings=False)
    t0 = time.time()
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16,
                                                              attn_implementation="sdpa")
    model.eval()
    shutil.rmtree(path, ignore_errors=True)
    model.save_pretrained(path)
    params = sum(p.numel() for p in model.parameters())
    log.write(f"wrote {path}: {params} parameters in {time.time() - t0:.1f} s\n")
    return model, params


def time_transformers(model, V, lengths, reps, log):
    """{T: (ms or None for out of memory, peak GiB)}: forward with loss, median after one warm-up."""
    out = {}
    for T in lengths:
        ids = torch.randint(0, V, (1, T), device="cuda", generator=torch.Generator("cuda").manual_seed(11))
        torch.cuda.reset_peak_memory_stats()
        try:
            times = []
            with torch.inference_mode():
                for i in range(reps + 1):
                    torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    loss = model(input_ids=ids, labels=ids).loss
                    torch.cuda.synchronize()
                    if i > 0:
                        times.append((time.perf_counter() - t0) * 1e3)
            out[T] = (statistics.median(times), torch.cuda.max_memory_allocated() / 2 ** 30)
            log.write(f"transformers T={T} ms={out[T][0]:.1f} loss={loss.item():.4f} peak_gib={out[T][1]:.1f}\n")
        except torch.cuda.OutOfMemoryError as e:
            out[T] = (None, torch.cuda.max_memory_allocated() / 2 ** 30)
            log.write(f"transformers T={T} out of memory: {str(e).splitlines()[0]}\n")
        del ids
        gc.collect()
        torch.cuda.empty_cache()
    return out


def drop_page_cache():
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def disk_read_gbps(path):
    """GB/s of reading the checkpoint's .safetensors files from disk (page cache dropped first), or None."""
    if not drop_page_cache():
        return None
    total, t0 = 0, time.perf_counter()
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            with open(os.path.join(path, f), "rb", buffering=0) as fh:
                while chunk := fh.read(64 << 20):
                    total += len(chunk)
    return total / (time.perf_counter() - t0) / 1e9


def lab(binary, path, args, log):
    """forward_lab's "load", "forward" and "profile" lines by (kind, T), and its kernel choice."""
    out = run([os.path.join(binary, "forward_lab"), "--dir", path] + args, log)
    rows = {}
    for line in out.splitlines():
        kind = line.split(" ", 1)[0]
        if kind in ("load", "forward", "profile"):
            rows[(kind, int(fields(line).get("T", 0)))] = fields(line)
        elif kind == "kernels":
            rows[("kernels", 0)] = line[len("kernels "):]
    return rows


def flops(family, params_per_token, T):
    """Dense-causal matmul FLOPs of one forward with loss (as forward_lab counts them)."""
    _, s = FAMILIES[family]
    d = s.get("head_dim", s["hidden_size"] // s["num_attention_heads"])
    return params_per_token * T + s["num_hidden_layers"] * 2.0 * T * T * d * s["num_attention_heads"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True, choices=sorted(FAMILIES))
    ap.add_argument("--bin", default="build-carry")
    ap.add_argument("--dir", default="/tmp/ropescope_8b")
    ap.add_argument("--lengths", default="8192,32768")
    ap.add_argument("--long", default="131072", help="lengths run once each (no repeats), with profiles")
    ap.add_argument("--torch", default="8192,32768,131072")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    out = os.environ.get("OUT", ".")
    log = open(os.path.join(out, f"gpu_8b_{args.family}.log"), "w")
    peak = matmul_peak()
    path = os.path.join(args.dir, args.family)
    model, params = write_checkpoint(args.family, path, log)
    V = FAMILIES[args.family][1]["vocab_size"]
    theirs = time_transformers(model, V, [int(t) for t in args.torch.split(",") if t], args.reps, log)
    del model
    gc.collect()
    torch.cuda.empty_cache()
    per_token = 2 * params  # every weight once per token (embedding rows are read, not multiplied: close enough)

    disk = disk_read_gbps(path)
    dropped = drop_page_cache()
    ours = lab(args.bin, path, ["--tokens", args.lengths, "--reps", str(args.reps), "--warmups", "1", "--profile"],
               log)
    longs = [t for t in args.long.split(",") if t]
    for T in longs:
        ours.update({k: v for k, v in lab(args.bin, path, ["--tokens", T, "--reps", "1", "--warmups", "1",
                                                           "--profile"], log).items() if k[0] != "load"})
    window = FAMILIES[args.family][1].get("sliding_window")
    no_window = {}
    if window and longs:
        # Same weights, window removed: the cost the window saves at the longest length.
        bare = path + "_no_window"
        shutil.rmtree(bare, ignore_errors=True)
        os.makedirs(bare)
        for f in os.listdir(path):
            if f.endswith((".safetensors", ".json")) and f != "config.json":
                os.symlink(os.path.join(path, f), os.path.join(bare, f))
        cfg = json.load(open(os.path.join(path, "config.json")))
        cfg["sliding_window"] = None
        json.dump(cfg, open(os.path.join(bare, "config.json"), "w"), indent=2)
        no_window = lab(args.bin, bare, ["--tokens", longs[-1], "--reps", "1", "--warmups", "1"], log)

    load = ours[("load", 0)]
    print(f"\n{args.family}: {params / 1e9:.2f}B parameters; {torch.cuda.get_device_name()}, torch "
          f"{torch.__version__}, transformers {transformers.__version__}; bf16 matmul peak {peak:.0f} TFLOP/s")
    print(f"load: {float(load['bytes']) / 1e9:.1f} GB in {float(load['seconds']):.1f} s = "
          f"{float(load['gb_per_s']):.2f} GB/s ({'page cache dropped' if dropped else 'page cache NOT dropped'}; "
          f"reading the files alone: {f'{disk:.2f} GB/s' if disk else 'not measured'})")
    if ("kernels", 0) in ours:
        print(f"kernels: {ours[('kernels', 0)]}")
    print(f"| {'T':>7} | {'ours tok/s':>11} | {'of peak':>7} | {'transformers tok/s':>18} | {'ratio':>6} | "
          f"{'profile / forward':>17} | {'our GiB':>7} | {'their GiB':>9} |")
    print(f"| {'-' * 6}:| {'-' * 10}:| {'-' * 6}:| {'-' * 17}:| {'-' * 5}:| {'-' * 16}:| {'-' * 6}:| {'-' * 8}:|")
    lengths = sorted({T for (k, T) in ours if k == "forward"} | set(theirs))
    for T in lengths:
        f, p = ours.get(("forward", T)), ours.get(("profile", T))
        tms, tgib = theirs.get(T, (None, None))
        ms = float(f["ms"]) if f else None
        row = [f"{T:>7}", f"{T / ms * 1e3:>11,.0f}" if ms else f"{'-':>11}",
               f"{100 * flops(args.family, per_token, T) / (ms * 1e-3) / 1e12 / peak:>6.0f}%" if ms else f"{'-':>7}",
               (f"{T / tms * 1e3:>18,.0f}" if tms else f"{'out of memory':>18}") if T in theirs else f"{'-':>18}",
               f"{tms / ms:>5.2f}x" if (ms and tms) else f"{'-':>6}",
               f"{float(p['over_forward']):>16.2f}x" if p else f"{'-':>17}",
               f"{max(float(f['used_gib']), float(p['used_gib']) if p else 0):>7.1f}" if f else f"{'-':>7}",
               f"{tgib:>9.1f}" if tgib is not None else f"{'-':>9}"]
        print("| " + " | ".join(row) + " |")
    if no_window:
        T = int(longs[-1])
        with_w, without = float(ours[("forward", T)]["ms"]), float(no_window[("forward", T)]["ms"])
        print(f"window {window} at T = {T}: forward {with_w / 1e3:.2f} s with it, {without / 1e3:.2f} s without: "
              f"{without / with_w:.2f}x")


if __name__ == "__main__":
    main()
