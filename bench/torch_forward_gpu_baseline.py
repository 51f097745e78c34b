"""PyTorch baseline for kernels/lab/forward_lab: the full forward pass of a
random RoPE++ EC model of the paper's 376M shape (hidden 1024, 8 layers, 8 q /
4 kv heads, d 128, MLP 3584, vocab 128256, bf16) or 776M shape (hidden 1536,
12 layers, 12 q / 6 kv heads, MLP 5376) on one sequence of T tokens,
with the next-token loss, as an HF-style implementation computes it: bf16
weights and residual stream, RMSNorm in fp32, queries rotated as real and
imaginary twins (interleaved heads), SDPA (causal, enable_gqa, default
backend choice), full T x V logits upcast to fp32 for the cross-entropy.
Timed with CUDA events (median over --reps after 3 warm-ups), under no_grad.
"""
import argparse

import torch
import torch.nn.functional as F


SHAPES = {  # V, hidden, layers, query heads, kv heads, d, MLP
    "376m": (128256, 1024, 8, 8, 4, 128, 3584),
    "776m": (128256, 1536, 12, 12, 6, 128, 5376),
}


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


def rms_norm(x, w, eps=1e-5):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def make_model(V, h, layers, H, KV, d, I, dev):
    g = torch.Generator(device=dev).manual_seed(1)

    def w(*shape, std=0.02):
        return (torch.randn(*shape, generator=g, device=dev) * std).to(torch.bfloat16)

    model = {"embed": w(V, h, std=1.0), "lm_head": w(V, h, std=h ** -0.5),
             "norm": torch.ones(h, device=dev, dtype=torch.bfloat16), "layers": []}
    for _ in range(layers):
        model["layers"].append({
            "in_norm": torch.ones(h, device=dev, dtype=torch.bfloat16),
            "post_norm": torch.ones(h, device=dev, dtype=torch.bfloat16),
            "q": w(H * d, h), "k": w(KV * d, h), "v": w(KV * d, h), "o": w(h, 2 * H * d),
            "gate": w(I, h), "up": w(I, h), "down": w(h, I)})
    return model


def forward(model, tokens, cos, sin, H, KV, d):
    T = tokens.shape[0]
    x = model["embed"][tokens]
    for L in model["layers"]:
        xn = rms_norm(x, L["in_norm"])
        q = F.linear(xn, L["q"]).view(T, H, d).transpose(0, 1)
        k = F.linear(xn, L["k"]).view(T, KV, d).transpose(0, 1)
        v = F.linear(xn, L["v"]).view(T, KV, d).transpose(0, 1)
        q_re = q * cos + rotate_half(q) * sin
        q_im = q * sin - rotate_half(q) * cos
        q2 = torch.stack((q_re, q_im), dim=1).reshape(2 * H, T, d)  # head 2j real, 2j+1 imaginary
        k = k * cos + rotate_half(k) * sin
        out = F.scaled_dot_product_attention(q2[None], k[None], v[None], is_causal=True, enable_gqa=True)[0]
        x = x + F.linear(out.transpose(0, 1).reshape(T, 2 * H * d), L["o"])
        xn = rms_norm(x, L["post_norm"])
        x = x + F.linear(F.silu(F.linear(xn, L["gate"])) * F.linear(xn, L["up"]), L["down"])
    logits = F.linear(rms_norm(x, model["norm"]), model["lm_head"]).float()
    return F.cross_entropy(logits[:-1], tokens[1:], reduction="none")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--T", type=int, default=4096)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--shape", choices=SHAPES, default="376m")
    a = p.parse_args()
    dev = "cuda"
    V, h, layers, H, KV, d, I = SHAPES[a.shape]
    model = make_model(V, h, layers, H, KV, d, I, dev)
    inv = 1e4 ** (-torch.arange(0, d, 2, device=dev, dtype=torch.float64) / d)
    ang = torch.arange(a.T, device=dev, dtype=torch.float64)[:, None] * inv[None]
    cos = torch.cat((ang.cos(), ang.cos()), -1).to(torch.bfloat16)
    sin = torch.cat((ang.sin(), ang.sin()), -1).to(torch.bfloat16)
    tokens = torch.randint(0, V, (a.T,), device=dev)
    with torch.no_grad():
        for _ in range(3):
            nll = forward(model, tokens, cos, sin, H, KV, d)
        start = [torch.cuda.Event(enable_timing=True) for _ in range(a.reps)]
        end = [torch.cuda.Event(enable_timing=True) for _ in range(a.reps)]
        for s, e in zip(start, end):
            s.record()
            forward(model, tokens, cos, sin, H, KV, d)
            e.record()
        torch.cuda.synchronize()
    ms = sorted(s.elapsed_time(e) for s, e in zip(start, end))[a.reps // 2]
    print(f"torch_forward shape={a.shape} T={a.T} ms={ms:.3f} tokens_per_s={a.T / ms * 1e3:.0f} "
          f"mean_nll={nll.mean().item():.4f} peak_gib={torch.cuda.max_memory_allocated() / 2**30:.2f} "
          f"torch={torch.__version__}")


if __name__ == "__main__":
    main()
