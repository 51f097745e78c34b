"""PyTorch SDPA baseline for kernels/lab/attention_lab: causal bf16 attention
forward at the lab's shapes (16 attention heads over 4 KV heads, d = 128, one
sequence), timed with CUDA events (median), through the flash backend (the
issue's target) and, for reference, the cuDNN backend.

Writes "T tflops_flash tflops_cudnn" lines to --out for attention_lab --sdpa.
FLOPs counted as in the lab: 4 * T * T * d * A / 2 (causal half).
"""
import argparse

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def time_ms(fn, reps):
    for _ in range(3):
        fn()
    start = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    end = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for s, e in zip(start, end):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in zip(start, end))
    return times[len(times) // 2]


def run(backend, q, k, v, reps):
    """Median ms, and how GQA was fed: natively (enable_gqa) or with K/V repeated."""
    with sdpa_kernel(backend):
        try:
            ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True), reps)
            return ms, "enable_gqa"
        except RuntimeError:
            g = q.shape[1] // k.shape[1]
            kr, vr = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
            ms = time_ms(lambda: F.scaled_dot_product_attention(q, kr, vr, is_causal=True), reps)
            return ms, "repeated K/V"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    A, KV, d = 16, 4, 128
    torch.manual_seed(0)
    lines = []
    for T in (4096, 16384):
        q = torch.randn(1, A, T, d, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, KV, T, d, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(1, KV, T, d, device="cuda", dtype=torch.bfloat16)
        flops = 4.0 * T * T * d * A / 2
        result = {}
        for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                ms, how = run(backend, q, k, v, args.reps)
                result[name] = flops / (ms * 1e-3) / 1e12
                print(f"SDPA {name:5s} T={T:6d}: {ms:8.3f} ms  {result[name]:7.1f} TFLOP/s  ({how})", flush=True)
            except RuntimeError as err:
                result[name] = 0.0
                print(f"SDPA {name:5s} T={T:6d}: unavailable ({str(err).splitlines()[0]})", flush=True)
        lines.append(f"{T} {result['flash']:.3f} {result['cudnn']:.3f}\n")
    with open(args.out, "w") as f:
        f.writelines(lines)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")


if __name__ == "__main__":
    main()
