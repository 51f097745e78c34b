"""The CUDA backend's speed targets (issue 6) in one run on the GPU machine:
every number below is measured in this invocation, ours beside PyTorch's.

  - bf16 matmul peak: torch.matmul 8192^3 on random bf16 (the ceiling the
    "fraction of peak" column divides by);
  - perplexity-sweep throughput: kernels/lab/forward_lab (Backend::forward,
    tokens in, per-token NLL out) against bench/torch_forward_gpu_baseline.py
    (HF-style bf16 forward, SDPA, full logits + cross-entropy), random RoPE++ EC
    checkpoints of the 376M and 776M shapes, T = 4096 and 32768; target 1.3x;
  - exact distance profiles of the 376M EC model (forward_lab --profile) at
    T = 32768 against PyTorch's plain forward (target at most 1.5x its time)
    and at T = 65536 (target: runs);
  - the attention kernel alone at T = 16384 against SDPA (attention_lab and
    bench/torch_attention_baseline.py; target 0.8x), when --attention is given.

Usage (binaries from build-carry/, see kernels/lab/run_device.sh):
  python3 bench/gpu_targets.py [--bin build-carry] [--reps 5] [--attention]
Prints the table last; raw tool output goes to $OUT/gpu_targets.log.
"""
import argparse
import os
import re
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = {"376m": (128256, 1024, 8, 8, 4, 128, 3584), "776m": (128256, 1536, 12, 12, 6, 128, 5376)}


def model_flops(shape, T):
    """Matmul FLOPs (2 per multiply-add) of one forward with loss, as forward_lab counts them."""
    V, h, layers, H, KV, d, I = SHAPES[shape]
    A = 2 * H  # EC: real and imaginary head per query head
    per_token = 2 * layers * (h * (H * d + 2 * KV * d + A * d) + 3 * h * I) + 2 * h * V
    return per_token * T + layers * 2.0 * T * T * d * A


def run(cmd, log):
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    r = subprocess.run(cmd, capture_output=True, text=True)
    log.write(r.stdout + r.stderr)
    log.flush()
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r.stdout


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def matmul_peak():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(10):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return 2 * 8192 ** 3 / (sorted(times)[len(times) // 2] * 1e-3) / 1e12


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build-carry")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--attention", action="store_true")
    args = ap.parse_args()
    out = os.environ.get("OUT", ".")
    log = open(os.path.join(out, "gpu_targets.log"), "w")
    peak = matmul_peak()
    rows = []  # (measure, ours, pytorch, ratio, target, fraction of peak)

    torch_ms = {}
    for shape in SHAPES:
        for T in (4096, 32768):
            line = run([sys.executable, os.path.join(HERE, "torch_forward_gpu_baseline.py"), "--shape", shape,
                        "--T", str(T), "--reps", str(args.reps)], log).strip().splitlines()[-1]
            torch_ms[(shape, T)] = float(fields(line)["ms"])
        lab = run([os.path.join(args.bin, "forward_lab"), "--shape", shape, "--tokens", "4096,32768", "--reps",
                   str(args.reps)] + (["--profile"] if shape == "376m" else []), log)
        for line in lab.splitlines():
            if not line.startswith(("forward ", "profile ")):
                continue
            f = fields(line)
            T, ms = int(f["T"]), float(f["ms"])
            base = torch_ms[(shape, T)]
            if line.startswith("forward "):
                rows.append((f"ppl throughput {shape} EC, T = {T}", f"{T / ms * 1e3:,.0f} tok/s",
                             f"{T / base * 1e3:,.0f} tok/s", base / ms, ">= 1.3x",
                             model_flops(shape, T) / (ms * 1e-3) / 1e12 / peak))
            elif T == 32768:
                rows.append((f"exact profiles {shape} EC, T = {T}", f"{ms:.1f} ms", f"{base:.1f} ms (plain forward)",
                             ms / base, "<= 1.5x", None))
    lab = run([os.path.join(args.bin, "forward_lab"), "--tokens", "65536", "--reps", "1", "--profile"], log)
    for line in lab.splitlines():
        if line.startswith("profile "):
            f = fields(line)
            rows.append(("exact profiles 376m EC, T = 65536", f"{float(f['ms']):.1f} ms", "-", None, "runs",
                         None))

    if args.attention:
        sdpa_file = os.path.join(out, "sdpa.txt")
        run([sys.executable, os.path.join(HERE, "torch_attention_baseline.py"), "--out", sdpa_file], log)
        sdpa = {int(l.split()[0]): (float(l.split()[1]), float(l.split()[2])) for l in open(sdpa_file) if l.strip()}
        lab = run([os.path.join(args.bin, "attention_lab"), "--sdpa", sdpa_file, "--kernel", "both"], log)
        for line in lab.splitlines():
            # attention_lab's timing rows: T, kernel, attention ms, key-rotation ms, TFLOP/s, ...
            m = re.match(r"^\s+(\d+)\s+(mma|wgmma)\s+[\d.]+\s+[\d.]+\s+([\d.]+)", line)
            if m and int(m.group(1)) == 16384:
                flash, cudnn = sdpa[16384]
                ours = float(m.group(3))
                rows.append((f"attention {m.group(2)}, T = 16384 (vs SDPA cuDNN)", f"{ours:.0f} TFLOP/s",
                             f"{cudnn:.0f} TFLOP/s", ours / cudnn, ">= 0.8x", ours / peak))
                rows.append((f"attention {m.group(2)}, T = 16384 (vs SDPA flash)", f"{ours:.0f} TFLOP/s",
                             f"{flash:.0f} TFLOP/s", ours / flash, ">= 0.8x", ours / peak))

    print(f"\n{torch.cuda.get_device_name()}, torch {torch.__version__}; measured bf16 matmul peak {peak:.0f} TFLOP/s")
    print(f"| {'measure':44} | {'ours':>18} | {'PyTorch':>28} | {'ratio':>6} | {'target':>8} | {'of peak':>7} |")
    print(f"| {'-' * 44} | {'-' * 18}:| {'-' * 28}:| {'-' * 6}:| {'-' * 8}:| {'-' * 7}:|")
    for name, ours, theirs, ratio, target, frac in rows:
        r = f"{ratio:.2f}x" if ratio is not None else "-"
        fp = f"{100 * frac:.0f}%" if frac is not None else "-"
        print(f"| {name:44} | {ours:>18} | {theirs:>28} | {r:>6} | {target:>8} | {fp:>7} |")


if __name__ == "__main__":
    main()
