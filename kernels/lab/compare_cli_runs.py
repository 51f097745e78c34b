"""Largest differences between the CPU and CUDA runs of kernels/lab/run_cli_gpu.sh:
profile (mean probability / score per bin and head, summary statistics),
attn (probabilities and scores of every map) and ppl (mean NLL per condition
and length). Usage: compare_cli_runs.py DIR (holding profile_{cpu,cuda}*,
attn_{cpu,cuda}/, ppl_{cpu,cuda}.csv)."""
import csv
import json
import os
import sys

import numpy as np


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def main():
    d = sys.argv[1]
    cpu, gpu = rows(os.path.join(d, "profile_cpu.csv")), rows(os.path.join(d, "profile_cuda.csv"))
    assert len(cpu) == len(gpu)
    worst_p = max(abs(float(g["mean_prob"]) - float(c["mean_prob"])) / max(float(c["mean_prob"]), 1e-30)
                  for c, g in zip(cpu, gpu))
    worst_s = max(abs(float(g["mean_score"]) - float(c["mean_score"])) for c, g in zip(cpu, gpu))
    sc, sg = (json.load(open(os.path.join(d, f"profile_{x}_summary.json"))) for x in ("cpu", "cuda"))
    print(f"profile: {len(cpu)} (layer, head, bin) rows; mean prob max rel diff {worst_p:.2e}; "
          f"mean score max abs diff {worst_s:.2e}")

    def numbers(obj, prefix=""):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from numbers(v, f"{prefix}.{k}")
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                yield from numbers(v, f"{prefix}[{i}]")
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            yield prefix, float(obj)

    diffs = [(abs(a - b) / max(abs(a), 1e-12), k, a, b)
             for (k, a), (_, b) in zip(numbers(sc), numbers(sg)) if "wall" not in k]
    rel, key, a, b = max(diffs)
    print(f"profile summary: worst rel diff {rel:.2e} at {key} (cpu {a:.6g}, cuda {b:.6g})")

    for name in ("attn_probs", "attn_scores"):
        c = np.load(os.path.join(d, "attn_cpu", f"{name}.npy"))
        g = np.load(os.path.join(d, "attn_cuda", f"{name}.npy"))
        finite = np.isfinite(c)
        assert (np.isfinite(g) == finite).all(), f"{name}: masked entries differ"
        diff = np.abs(g[finite] - c[finite])
        print(f"attn {name}: shape {c.shape}, max abs diff {diff.max():.2e}, mean {diff.mean():.2e}")

    pc, pg = rows(os.path.join(d, "ppl_cpu.csv")), rows(os.path.join(d, "ppl_cuda.csv"))
    for c, g in zip(pc, pg):
        assert (c["condition"], c["L"]) == (g["condition"], g["L"])
        print(f"ppl {c['condition']:>22} L={c['L']:>5}: mean NLL cpu {float(c['mean_nll']):.5f} "
              f"cuda {float(g['mean_nll']):.5f} (diff {float(g['mean_nll']) - float(c['mean_nll']):+.1e})")


if __name__ == "__main__":
    main()
