#!/usr/bin/env python3
"""Tables of the BPE flagship across training seeds (issue 17): reads the data that
analysis/run_flagship_bpe.sh wrote for each model set (notebooks-data/flagship-bpe/SET/)
and the models' card.json, and writes notebooks-data/flagship-bpe/summary.md: per
quantity the value for each seed, then the mean and the spread (max - min). Every
number comes from a committed ropescope output; nothing is recomputed.
Usage: analysis/summarize_flagship_bpe.py [SET_DIR ...]   (default: notebooks-data/models-bpe
       notebooks-data/models-bpe-seed2)"""
import csv
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = [("rope", "RoPE"), ("eh", "EH"), ("ec", "EC")]
LENGTHS = [1024, 2048, 4096, 8192, 16384]
CONDITIONS = ["clean", "linear16", "ntk16", "yarn16"]


def ppl_table(path):
    """{(condition, L): ppl} of a `ropescope ppl` CSV."""
    with open(path) as f:
        return {(r["condition"], int(r["L"])): float(r["ppl"]) for r in csv.DictReader(f)}


def spread(values, fmt):
    """'v1 / v2 (mean m, spread s)' over the seeds."""
    mean = sum(values) / len(values)
    each = " / ".join(fmt.format(v) for v in values)
    if len(values) == 1:
        return each
    return f"{each} (mean {fmt.format(mean)}, spread {fmt.format(max(values) - min(values))})"


def twins(summary):
    """Imaginary heads whose mean distance exceeds their real twin's, and the pairs compared."""
    pairs = {}
    for h in summary["heads"]:
        pairs.setdefault((h["layer"], h["query_head"]), {})[h["kind"]] = h["mean_distance"]
    both = [p for p in pairs.values() if "real" in p and "imaginary" in p]
    return sum(p["imaginary"] > p["real"] for p in both), len(both)


def main():
    sets = sys.argv[1:] or ["notebooks-data/models-bpe", "notebooks-data/models-bpe-seed2"]
    names = [os.path.basename(os.path.normpath(s)) for s in sets]
    data = [os.path.join(ROOT, "notebooks-data/flagship-bpe", n) for n in names]
    seeds = [json.load(open(os.path.join(ROOT, s, "rope", "card.json")))["seed"] for s in sets]
    out = [f"# BPE flagship across seeds {', '.join(map(str, seeds))}",
           "",
           f"Written by `analysis/summarize_flagship_bpe.py` from `{'`, `'.join(names)}` "
           "(one model set per training seed, in that order). Each cell: the value per seed, "
           "then their mean and spread (max - min).",
           ""]

    out += ["## Validation loss (nats per token, card.json)", "", "| model | validation | held-out train documents |",
            "| --- | --- | --- |"]
    for m, label in MODELS:
        cards = [json.load(open(os.path.join(ROOT, s, m, "card.json")))["eval"] for s in sets]
        out.append(f"| {label} | {spread([c['validation_nll'] for c in cards], '{:.4f}')} | "
                   f"{spread([c['holdout_nll'] for c in cards], '{:.4f}')} |")

    tables = {m: [ppl_table(os.path.join(d, f"ppl_{m}.csv")) for d in data] for m, _ in MODELS}
    out += ["", "## Perplexity vs window length (1 MiB of test text, stride L; training length 1024)", ""]
    for c in CONDITIONS:
        out += [f"### {c}", "", "| model | " + " | ".join(map(str, LENGTHS)) + " |",
                "| --- |" + " --- |" * len(LENGTHS)]
        for m, label in MODELS:
            out.append(f"| {label} | " + " | ".join(spread([t[(c, L)] for t in tables[m]], "{:.2f}") for L in LENGTHS) + " |")
        out.append("")

    out += ["## Noise on one query component (EC) and head ablation (EC, EH); 256 KiB of test text", "",
            "Perplexity; in brackets the ratio to the clean model at the same length.", "",
            "| model | condition | 1024 | 4096 |", "| --- | --- | --- | --- |"]
    for m, file in (("EC", "noise_ec.csv"), ("EH", "ablate_eh.csv")):
        runs = [ppl_table(os.path.join(d, file)) for d in data]
        conditions = [c for (c, L) in runs[0] if L == 1024]
        for c in conditions:
            cells = []
            for L in (1024, 4096):
                ratios = [t[(c, L)] / t[("clean", L)] for t in runs]
                cells.append(spread([t[(c, L)] for t in runs], "{:.1f}") + " [x" + " / x".join(f"{r:.2f}" for r in ratios) + "]")
            out.append(f"| {m} | {c} | {cells[0]} | {cells[1]} |")

    out += ["", "## Distance profiles: real vs imaginary heads (whole model)", "",
            "| model | window | mean distance real | mean distance imaginary | mass beyond 64 real | imaginary "
            "| mass beyond 256 real | imaginary | imaginary head further than its real twin |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in ("ec", "eh"):
        for w in (1024, 4096):
            summaries = [json.load(open(os.path.join(d, f"profile_{m}_{w}_summary.json"))) for d in data]
            r = [s["model"]["real"] for s in summaries]
            i = [s["model"]["imaginary"] for s in summaries]
            wins = [twins(s) for s in summaries]
            out.append(f"| {m.upper()} | {w} | {spread([x['mean_distance'] for x in r], '{:.1f}')} | "
                       f"{spread([x['mean_distance'] for x in i], '{:.1f}')} | "
                       f"{spread([x['mass_beyond']['64'] for x in r], '{:.3f}')} | "
                       f"{spread([x['mass_beyond']['64'] for x in i], '{:.3f}')} | "
                       f"{spread([x['mass_beyond']['256'] for x in r], '{:.3f}')} | "
                       f"{spread([x['mass_beyond']['256'] for x in i], '{:.3f}')} | "
                       + " / ".join(f"{a} of {b}" for a, b in wins) + " |")
    path = os.path.join(ROOT, "notebooks-data/flagship-bpe/summary.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
