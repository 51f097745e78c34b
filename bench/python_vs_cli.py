"""The cost of calling through Python: the same perplexity run through the `ropescope ppl` CLI and through
`ropescope.Model.perplexity` in one invocation, alternating, and the ratio of the medians.

Two times each: end to end (CLI: the process, model load included; Python: Model() and perplexity()), and
the analysis alone (CLI: the sidecar's wall_time_s, from the loaded model to the written outputs; Python: the
perplexity() call). Both must give the same numbers, which is checked first.

    python bench/python_vs_cli.py [--model notebooks-data/models/ec] [--tokens notebooks-data/flagship/val_16k.bin]
        [--lengths 256,512,1024] [--device cpu] [--reps 5] [--binary build/src/cli/ropescope]
Needs the ropescope package importable (PYTHONPATH=build/python or pip install .).
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np

import ropescope

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(ROOT, "notebooks-data/models/ec"))
    parser.add_argument("--tokens", default=os.path.join(ROOT, "notebooks-data/flagship/val_16k.bin"))
    parser.add_argument("--lengths", default="256,512,1024")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--binary", default=os.environ.get("ROPESCOPE_BINARY", os.path.join(ROOT, "build/src/cli/ropescope")))
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    tokens = np.fromfile(args.tokens, dtype=np.uint8).astype(np.int32)

    cli_total, cli_analysis, py_total, py_analysis = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="ropescope-bench-") as scratch:
        prefix = os.path.join(scratch, "ppl")
        for rep in range(args.reps):
            start = time.perf_counter()
            subprocess.run([args.binary, "ppl", args.model, "--tokens", args.tokens, "--bytes", "--lengths", args.lengths,
                            "--device", args.device, "--quiet", "--out", prefix], check=True, stdout=subprocess.DEVNULL)
            cli_total.append(time.perf_counter() - start)
            with open(prefix + ".csv.json") as f:
                cli_analysis.append(json.load(f)["wall_time_s"])

            start = time.perf_counter()
            model = ropescope.Model(args.model, device=args.device)
            begin = time.perf_counter()
            report = model.perplexity(tokens, lengths=lengths, byte_level=True, progress=False)
            end = time.perf_counter()
            py_total.append(end - start)
            py_analysis.append(end - begin)
            if rep == 0:
                with open(prefix + ".csv") as f:
                    cli_rows = list(csv.DictReader(f))
                for cli_row, py_row in zip(cli_rows, report.rows):
                    if float(cli_row["mean_nll"]) != py_row["mean_nll"]:
                        raise SystemExit(f"different numbers: CLI {cli_row} vs Python {py_row}")

    def line(what, cli, py):
        c, p = statistics.median(cli), statistics.median(py)
        print(f"{what:<28} CLI {c:8.3f} s   Python {p:8.3f} s   Python/CLI {p / c:6.3f}")

    print(f"ppl {os.path.basename(args.model)} --lengths {args.lengths} on {len(tokens)} tokens, device {args.device}, "
          f"median of {args.reps} alternating runs")
    line("analysis (model loaded)", cli_analysis, py_analysis)
    line("end to end (load included)", cli_total, py_total)


if __name__ == "__main__":
    main()
