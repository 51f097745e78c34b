"""Data parallel over the GPUs of one host (issue 16), on the two-GPU machine.

One Llama-3-8B-shaped random checkpoint (written by transformers, bench/gpu_8b.py's writer), random
token ids, and the ropescope CLI run three ways in this invocation:
  - `ppl --lengths T --stride-fraction 1` on --devices 0 and on --devices 0,1: the CSVs must be
    byte-identical (each window runs whole on one device); throughput from the difference between a
    run of --few and one of --many windows, so that loading the weights cancels out;
  - `profile -w T` on 0 and on 0,1: the same timing; the outputs (CSV, summary, .npy arrays) must be
    byte-identical too: the GPU distance sums are exact fixed-point integers (kernels/ops/fixed_point.hpp),
    the same whatever order their atomics land in. The one-GPU profile runs twice and must be
    byte-identical to itself; where anything differs, the largest difference |a - b| / max(1, |a|)
    is printed.
Prints the ratio two-GPU / one-GPU tokens per second (target >= 1.85 at T = 32768 for ppl).

Usage: python3 bench/gpu_data_parallel.py --bin DIR [--T 32768] [--few 2] [--many 18]
       (DIR holds the CUDA build's ropescope and lib/); raw output in $OUT/gpu_data_parallel.log.
"""
import argparse
import csv
import filecmp
import json
import os
import sys
import time

import numpy as np
import torch

from gpu_8b import write_checkpoint
from gpu_targets import run


def largest_difference(a, b):
    """max |x - y| / max(1, |x|) over the numbers of two JSON values or CSV rows of the same shape
    (infinity where the shape or a text differs)."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return max([largest_difference(a[k], b[k]) for k in a] or [0.0])
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return max([largest_difference(x, y) for x, y in zip(a, b)] or [0.0])
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return 0.0 if a == b else float("inf")
    try:
        u, v = float(a), float(b)
    except (TypeError, ValueError):
        return 0.0 if a == b else float("inf")
    return abs(u - v) / max(1.0, abs(u))


def profile_difference(one, two):
    """The largest difference between two profile runs' table and summary."""
    rows = [list(csv.reader(open(p + ".csv"))) for p in (one, two)]
    summaries = [json.load(open(p + "_summary.json")) for p in (one, two)]
    return max(largest_difference(*rows), largest_difference(*summaries))


PROFILE_FILES = (".csv", "_summary.json", "_prob.npy", "_score.npy", "_bins.npy")


def profile_identical(one, two):
    """Whether two profile runs wrote the same bytes in every output."""
    return all(filecmp.cmp(one + f, two + f, shallow=False) for f in PROFILE_FILES)


def profile_verdict(one, two):
    if profile_identical(one, two):
        return True, "byte-identical"
    return False, f"DIFFER (largest difference {profile_difference(one, two):.2g})"


def timed(cmd, log):
    t0 = time.perf_counter()
    run(cmd, log)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--T", type=int, default=32768)
    ap.add_argument("--few", type=int, default=2, help="windows of the short run (an even number)")
    ap.add_argument("--many", type=int, default=18, help="windows of the long run (an even number)")
    ap.add_argument("--work", default="/tmp/dp")
    args = ap.parse_args()
    out = os.environ.get("OUT", ".")
    log = open(os.path.join(out, "gpu_data_parallel.log"), "w")
    gpus = torch.cuda.device_count()
    if gpus < 2:
        sys.exit(f"needs two GPUs, this machine has {gpus}")
    os.makedirs(args.work, exist_ok=True)
    ckpt = os.path.join(args.work, "llama3_8b")
    model, _ = write_checkpoint("llama3_8b", ckpt, log)
    del model
    torch.cuda.empty_cache()
    ropescope = os.path.join(args.bin, "ropescope")
    T = args.T
    rng = np.random.default_rng(16)
    tokens = {}
    for n in (args.few, args.many):
        tokens[n] = os.path.join(args.work, f"tokens_{n}.npy")
        np.save(tokens[n], rng.integers(0, 128256, n * T, dtype=np.int32))

    rows = []
    for kind, extra in (("ppl", ["--lengths", str(T), "--stride-fraction", "1"]), ("profile", ["-w", str(T)])):
        seconds = {}
        for devices in ("0", "0,1"):
            for n in (args.few, args.many):
                prefix = os.path.join(args.work, f"{kind}_{devices.replace(',', '')}_{n}")
                seconds[devices, n] = timed([ropescope, kind, ckpt, "--tokens", tokens[n], *extra, "--devices", devices,
                                             "-q", "-o", prefix], log)
        rates = {d: (args.many - args.few) * T / (seconds[d, args.many] - seconds[d, args.few]) for d in ("0", "0,1")}
        pairs = [(os.path.join(args.work, f"{kind}_0_{n}"), os.path.join(args.work, f"{kind}_01_{n}"))
                 for n in (args.few, args.many)]
        if kind == "ppl":
            same = all(filecmp.cmp(a + ".csv", b + ".csv", shallow=False) for a, b in pairs)
            verdict = "byte-identical" if same else "DIFFER"
        else:
            verdicts = [profile_verdict(a, b) for a, b in pairs]
            same = all(v[0] for v in verdicts)
            verdict = "byte-identical" if same else "; ".join(v[1] for v in verdicts)
        rows.append((kind, rates["0"], rates["0,1"], same, verdict))
        log.write(f"{kind}: seconds {seconds}\n")
    # The one-GPU profile run again: it must be byte-identical to the first.
    again = os.path.join(args.work, f"profile_0_{args.few}_again")
    run([ropescope, "profile", ckpt, "--tokens", tokens[args.few], "-w", str(T), "--devices", "0", "-q", "-o", again], log)
    repeat_same, repeat = profile_verdict(os.path.join(args.work, f"profile_0_{args.few}"), again)
    backend = json.load(open(os.path.join(args.work, f"ppl_01_{args.many}.csv.json")))["backend"]
    print(f"Llama-3-8B shape, T = {T}, windows {args.few} and {args.many}; two-GPU backend: {backend}")
    print("| analysis | 1 GPU tok/s | 2 GPUs tok/s | ratio | two GPUs vs one |")
    print("| --- | --- | --- | --- | --- |")
    for kind, one, two, same, verdict in rows:
        print(f"| {kind} | {one:,.0f} | {two:,.0f} | {two / one:.2f}x | {verdict} |")
    print(f"profile on one GPU, run twice ({args.few} windows): {repeat}")
    if not all(r[3] for r in rows):
        sys.exit("two-GPU outputs differ from one GPU's")
    if not repeat_same:
        sys.exit("the one-GPU profile differs from itself")


if __name__ == "__main__":
    main()
