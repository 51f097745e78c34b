"""The cost of calling through Python: the same perplexity run through the `ropescope ppl` CLI and through
`ropescope.Model.perplexity` in one invocation, alternating, and the ratio of the medians.

Each run is a fresh process on both sides (the CLI, and `python -c` importing ropescope), so neither gains
from a warm process (a CUDA context with its kernels loaded, an OpenMP pool, a heap already touched). Two
times each: end to end (the whole process: interpreter start and import, model load, outputs), and the
analysis alone (CLI: the sidecar's wall_time_s, from the loaded model to the written outputs; Python: the
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
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# One Python run in a fresh interpreter: prints the analysis time and the clean condition's mean NLL per length.
PYTHON_RUN = """
import json, sys, time
import numpy as np
import ropescope
model_dir, tokens_path, lengths, device = sys.argv[1:]
tokens = np.fromfile(tokens_path, dtype=np.uint8).astype(np.int32)
model = ropescope.Model(model_dir, device=device)
begin = time.perf_counter()
report = model.perplexity(tokens, lengths=[int(x) for x in lengths.split(",")], byte_level=True, progress=False)
analysis = time.perf_counter() - begin
print(json.dumps({"analysis_s": analysis, "mean_nll": [row["mean_nll"] for row in report.rows]}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.path.join(ROOT, "notebooks-data/models/ec"))
    parser.add_argument("--tokens", default=os.path.join(ROOT, "notebooks-data/flagship/val_16k.bin"))
    parser.add_argument("--lengths", default="256,512,1024")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--binary", default=os.environ.get("ROPESCOPE_BINARY", os.path.join(ROOT, "build/src/cli/ropescope")))
    args = parser.parse_args()
    tokens = os.path.getsize(args.tokens)

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
            child = subprocess.run([sys.executable, "-c", PYTHON_RUN, args.model, args.tokens, args.lengths, args.device],
                                   check=True, capture_output=True, text=True)
            py_total.append(time.perf_counter() - start)
            result = json.loads(child.stdout)
            py_analysis.append(result["analysis_s"])
            if rep == 0:
                with open(prefix + ".csv") as f:
                    cli_rows = list(csv.DictReader(f))
                for cli_row, mean_nll in zip(cli_rows, result["mean_nll"]):
                    if float(cli_row["mean_nll"]) != mean_nll:
                        raise SystemExit(f"different numbers: CLI {cli_row} vs Python mean_nll {mean_nll}")

    def line(what, cli, py):
        c, p = statistics.median(cli), statistics.median(py)
        print(f"{what:<28} CLI {c:8.3f} s   Python {p:8.3f} s   Python/CLI {p / c:6.3f}")

    print(f"ppl {os.path.basename(args.model)} --lengths {args.lengths} on {tokens} tokens, device {args.device}, "
          f"median of {args.reps} alternating runs, each a fresh process")
    line("analysis (model loaded)", cli_analysis, py_analysis)
    line("end to end (load included)", cli_total, py_total)


if __name__ == "__main__":
    main()
