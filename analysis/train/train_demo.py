#!/usr/bin/env python3
"""Trains the three demo models (RoPE, RoPE++ EH, RoPE++ EC): byte-level by
default, or on BPE token files with --data u16 (issue 17; see "BPE models").

Written from /work/shared/reference/ROPEPP.md alone (sections 1 and 4); it
shares no code with ropescope's C++ engine or with tests/reference. The three
models have the same size, seed, data order (random 513-byte windows of
train.bin drawn from one seeded generator) and step budget; they differ only in
the attention layout:

    rope : q_proj H*d,     k/v_proj KV*d,     H attention heads
    ec   : q_proj H*d,     k/v_proj KV*d,     2H attention heads ("imag2")
    eh   : q_proj (H/2)*d, k/v_proj (KV/2)*d, H attention heads  ("imag1")

with H = num_attention_heads, KV = num_key_value_heads as config.json states
them. In RoPE++ attention head 2j is the real head of projected query j and
head 2j+1 its imaginary twin (the same query rotated by -pi/2, then RoPE):
q_im = q*sin - rotate_half(q)*cos.

Outputs under --out (flat names, so one device call returns them as files):
{rope,eh,ec}_config.json, {rope,eh,ec}_model.safetensors (bf16, HF Llama
names) and cards.json (one data card per model). Validation loss is measured on
the saved bf16 weights in float32 with ropescope's non-overlapping windows
(length = stride = --seq, 512 for the byte models: see window_targets).

--bench N instead times N steps of each model (after warm-up) and saves nothing.

BPE models (--data u16 --tokenizer tokenizer.json --single-pass): train and
validation are little-endian uint16 token files (analysis/corpus/
train_tokenizer.py), the vocabulary size is the tokenizer's, --tie ties lm_head to
embed_tokens (no lm_head tensor is saved). --single-pass cuts the train tokens
into non-overlapping windows of seq+1 tokens (stride seq) and visits each once,
in one seeded order shared by the variants: no token is trained on twice;
--steps then caps the step count (0 = as many full batches as the data holds).
Validation uses windows of length seq. --holdout F cuts the final whole documents
(at least a fraction F of the tokens) off the train split before training and
reports their loss: a held-out sample of the train split's own documents, so that
train vs held-out loss measures memorisation alone (the small validation split
differs from train in composition: one document is 21% of its tokens). The train
loss is measured on 1M tokens spread over the trained part. Each card has the loss curve (every
--log-every steps: mean train loss since the last point, and the loss on the
first 64k validation tokens every --eval-every steps).
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

VARIANTS = {"rope": None, "eh": "imag1", "ec": "imag2"}


def head_counts(variant, H, KV):
    """(projected query heads, KV heads, attention heads) for a config's H and KV."""
    if variant == "rope":
        return H, KV, H
    if variant == "ec":
        return H, KV, 2 * H
    return H // 2, KV // 2, H


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg, variant):
        super().__init__()
        h, d = cfg["hidden_size"], cfg["head_dim"]
        self.nq, self.nkv, self.natt = head_counts(variant, cfg["num_attention_heads"], cfg["num_key_value_heads"])
        self.imag = variant != "rope"
        self.d = d
        self.q_proj = nn.Linear(h, self.nq * d, bias=False)
        self.k_proj = nn.Linear(h, self.nkv * d, bias=False)
        self.v_proj = nn.Linear(h, self.nkv * d, bias=False)
        self.o_proj = nn.Linear(self.natt * d, h, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.nq, self.d).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.nkv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.nkv, self.d).transpose(1, 2)
        q_re = q * cos + rotate_half(q) * sin
        if self.imag:
            q_im = q * sin - rotate_half(q) * cos
            q_re = torch.stack((q_re, q_im), dim=2).reshape(B, 2 * self.nq, T, self.d)  # 2j real, 2j+1 imaginary
        k = k * cos + rotate_half(k) * sin
        rep = self.natt // self.nkv  # consecutive attention heads share a KV head
        k = k.to(v.dtype).repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        o = F.scaled_dot_product_attention(q_re.to(v.dtype), k, v, is_causal=True, scale=self.d ** -0.5)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.natt * self.d))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, m = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(h, m, bias=False)
        self.up_proj = nn.Linear(h, m, bias=False)
        self.down_proj = nn.Linear(m, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, cfg, variant):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = Attention(cfg, variant)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, cfg, variant):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(Layer(cfg, variant) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class Llama(nn.Module):
    """HF LlamaForCausalLM tensor names (model.*, lm_head); lm_head tied to embed_tokens
    when the config says tie_word_embeddings."""

    def __init__(self, cfg, variant):
        super().__init__()
        self.model = Body(cfg, variant)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        if cfg["tie_word_embeddings"]:
            self.lm_head.weight = self.model.embed_tokens.weight
        d = cfg["head_dim"]
        self.inv_freq = cfg["rope_theta"] ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=cfg["initializer_range"])

    def forward(self, ids):
        T = ids.shape[1]
        t = torch.arange(T, dtype=torch.float64)
        ang = torch.outer(t, self.inv_freq)  # exact angles in float64, then float32 tables
        ang = torch.cat((ang, ang), dim=-1)
        cos = ang.cos().float().to(ids.device)
        sin = ang.sin().float().to(ids.device)
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x)).float()


def make_config(args, variant):
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": args.vocab,
        "hidden_size": args.hidden,
        "intermediate_size": args.mlp,
        "num_hidden_layers": args.layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": args.seq,
        "initializer_range": 0.02,
        "tie_word_embeddings": args.tie,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "bfloat16",
        "rope_config": {"imag": False} if variant == "rope" else {"imag": True, "imag_mode": VARIANTS[variant]},
    }
    return cfg


def window_targets(N, L):
    """ropescope's windows for stride = L: (begin, first scored position in the window).

    Windows [kL, kL+L) while they fit, each scoring window positions 1..L-1;
    if (N - L) % L != 0, a tail window [N-L, N) scores only the targets past the
    previous window's end."""
    out = [(k * L, 1) for k in range((N - L) // L + 1)]
    end = out[-1][0] + L
    if end < N:
        out.append((N - L, end - (N - L)))
    return out


@torch.no_grad()
def evaluate(model, data, L, device, batch=16):
    """Mean NLL (nats) over ropescope's non-overlapping windows of length L; float32."""
    wins = window_targets(len(data), L)
    total, count = 0.0, 0
    for i in range(0, len(wins), batch):
        chunk = wins[i:i + batch]
        ids = torch.stack([data[b:b + L] for b, _ in chunk]).to(device).long()
        logp = F.log_softmax(model(ids).double(), dim=-1)
        nll = -logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)  # nll[:, p-1] predicts position p
        for row, (_, first) in enumerate(chunk):
            total += nll[row, first - 1:].sum().item()
            count += L - first
    return total / count, count, len(wins)


TRAIN_SAMPLE_SLICES, TRAIN_SAMPLE_WINDOWS = 64, 16


def train_sample(train, L):
    """The train loss's sample: 64 slices of 16 windows of L evenly spread over the trained tokens
    (a whole number of windows each, so no window joins two slices); 1M tokens at L = 1024."""
    width = TRAIN_SAMPLE_WINDOWS * L
    starts = np.linspace(0, len(train) - width, TRAIN_SAMPLE_SLICES).astype(np.int64)
    return torch.cat([train[int(b):int(b) + width] for b in starts]).cpu()


def split_holdout(train, fraction, separator):
    """(train, held out): the final whole documents of a u16 split (each starts with the separator id)
    holding at least `fraction` of its tokens. Split files are in document-hash order, so these
    documents are a random sample of the split's, never trained on."""
    starts = np.flatnonzero(train.numpy() == separator)
    cut = int(starts[starts <= len(train) * (1 - fraction)][-1])
    return train[:cut], train[cut:], len(starts) - int(np.searchsorted(starts, cut))


def lr_at(step, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def train_one(variant, args, train, val, holdout, device, log):
    cfg = make_config(args, variant)
    torch.manual_seed(args.seed)
    model = Llama(cfg, variant).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")
    step_fn = torch.compile(model) if args.compile else model
    gen = torch.Generator().manual_seed(args.seed)  # the same window order for every variant
    T = args.seq
    offsets_base = torch.arange(T + 1)
    if args.single_pass:
        order = torch.randperm((len(train) - 1) // T, generator=gen) * T
    steps = args.bench if args.bench else args.steps
    warm = 5 if args.bench else 0
    losses, curve = [], []
    t0 = None
    for step in range(steps + warm):
        if step == warm:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
        if args.single_pass:
            starts = order[step * args.batch:(step + 1) * args.batch]
        else:
            starts = torch.randint(0, len(train) - T - 1, (args.batch,), generator=gen)
        seq = train[(starts[:, None] + offsets_base).to(device)].long()
        for g in opt.param_groups:
            g["lr"] = lr_at(step - warm, args) if not args.bench else args.lr
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = step_fn(seq[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg["vocab_size"]), seq[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= warm:
            losses.append(loss.detach())
        if not args.bench and (step % args.log_every == 0 or step == steps - 1):
            point = {"step": step, "tokens": (step + 1) * args.batch * T,
                     "train_loss": round(torch.stack(losses[-args.log_every:]).mean().item(), 5),
                     "lr": opt.param_groups[0]["lr"]}
            msg = (f"{variant} step {step} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e} "
                   f"elapsed {time.time() - t0:.1f}s")
            if step % args.eval_every == 0 or step == steps - 1:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    point["val64k_loss"] = round(evaluate(model, val[:65536], T, device)[0], 5)
                msg += f" val64k {point['val64k_loss']:.4f}"
            curve.append(point)
            log(msg)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.time() - t0
    tokens = steps * args.batch * T
    log(f"{variant}: {steps} steps, {tokens} tokens, {wall:.1f}s, {tokens / wall:.0f} tokens/s, "
        f"{1000 * wall / steps:.1f} ms/step, params {n_params}")
    if args.bench:
        return None

    # Evaluate exactly what is saved: bf16 weights, float32 arithmetic. A tied lm_head is not saved.
    state = {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in model.state_dict().items()
             if not (cfg["tie_word_embeddings"] and k == "lm_head.weight")}
    eval_model = Llama(cfg, variant).to(device)
    eval_model.load_state_dict({k: v.float() for k, v in state.items()}, strict=not cfg["tie_word_embeddings"])
    eval_model.eval()
    val_nll, val_count, val_windows = evaluate(eval_model, val, T, device)
    train_nll, train_count, train_windows = evaluate(eval_model, train_sample(train, T), T, device)
    if holdout is not None:
        holdout_nll, holdout_count, holdout_windows = evaluate(eval_model, holdout, T, device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        val_nll_autocast = evaluate(model.eval(), val, T, device)[0]
    last = torch.stack(losses[-args.log_every:]).mean().item()
    unit = "byte" if args.data == "bytes" else "token"
    log(f"{variant}: val {val_nll:.4f} nats ({val_nll / math.log(2):.4f} bits/{unit}), "
        f"train sample {train_nll:.4f}, val with bf16 autocast {val_nll_autocast:.4f}"
        + (f", held-out train documents {holdout_nll:.4f}" if holdout is not None else ""))

    save_file(state, os.path.join(args.out, f"{variant}_model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(args.out, f"{variant}_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return {
        "variant": variant,
        "rope_config": cfg["rope_config"],
        "parameters": n_params,
        "steps": steps,
        "tokens_seen": tokens,
        "epochs_of_train_bin": tokens / len(train),
        "wall_time_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall),
        "final_train_loss_running": round(last, 5),
        "loss_curve": curve,
        "eval": {
            "definition": f"mean NLL in nats over non-overlapping windows of {T} {unit}s (ropescope ppl "
                          f"--lengths {T} --stride {T}: the first window scores targets 1..{T - 1}, a tail "
                          f"window [N-{T}, N) scores only targets past the previous window); bf16 weights "
                          "as saved, float32 arithmetic",
            "validation_nll": val_nll,
            f"validation_bits_per_{unit}": val_nll / math.log(2),
            "validation_tokens_scored": val_count,
            "validation_windows": val_windows,
            "train_sample_nll": train_nll,
            "train_sample_tokens_scored": train_count,
            "train_sample_definition": f"{TRAIN_SAMPLE_SLICES} slices of {TRAIN_SAMPLE_WINDOWS} windows ({TRAIN_SAMPLE_WINDOWS * T} "
                                       f"{unit}s each) evenly spread over the trained {unit}s, the same window rule",
            "validation_nll_bf16_autocast_training_weights": val_nll_autocast,
            **({"holdout_nll": holdout_nll, "holdout_tokens_scored": holdout_count, "holdout_windows": holdout_windows,
                "holdout_definition": args.holdout_note} if holdout is not None else {}),
        },
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default="notebooks-data/corpus/train.bin")
    p.add_argument("--val", default="notebooks-data/corpus/val.bin")
    p.add_argument("--out", default="out/demo")
    p.add_argument("--variants", default="rope,eh,ec")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--bench", type=int, default=0, help="time this many steps per model; save nothing")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--mlp", type=int, default=768)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr-ratio", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--wd", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=500, help="log the loss on the first 64k tokens of --val")
    p.add_argument("--data", choices=("bytes", "u16"), default="bytes", help="train/val: raw bytes or uint16 ids")
    p.add_argument("--tokenizer", help="tokenizer.json of the u16 ids (gives the vocabulary size)")
    p.add_argument("--tie", action="store_true", help="tie lm_head to embed_tokens")
    p.add_argument("--single-pass", action="store_true", help="each train token once (see the module doc)")
    p.add_argument("--holdout", type=float, default=0.0,
                   help="u16: hold out the final documents of --train, at least this fraction of its tokens "
                        "(a random sample of its documents, never trained on), and report their loss")
    p.add_argument("--separator", default="<|endoftext|>", help="with --holdout: the token that starts every document")
    p.add_argument("--corpus", default="notebooks-data/corpus (python3.11-doc, see corpus.json)",
                   help="what the cards say the corpus is")
    args = p.parse_args()
    args.vocab = 256
    if args.data == "u16":
        tj = json.load(open(args.tokenizer))
        args.vocab = max([*tj["model"]["vocab"].values(), *(t["id"] for t in tj["added_tokens"])]) + 1

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.makedirs(args.out, exist_ok=True)
    dtype = np.uint8 if args.data == "bytes" else np.dtype("<u2")
    train, val = (torch.from_numpy(np.fromfile(f, dtype=dtype).astype(np.int32 if args.data == "u16" else np.uint8))
                  for f in (args.train, args.val))
    holdout = None
    if args.holdout:
        if args.data != "u16":
            p.error("--holdout needs --data u16 (documents are marked by the tokenizer's separator)")
        separator = next(t["id"] for t in tj["added_tokens"] if t["content"] == args.separator)
        total = len(train)
        train, holdout, docs = split_holdout(train, args.holdout, separator)
        args.holdout_note = (f"the final {docs} documents of --train ({len(holdout)} of {total} tokens, each document "
                             f"starting with {args.separator}), cut off before training: never trained on")
    if args.single_pass:
        full = (len(train) - 1) // args.seq // args.batch
        args.steps = min(args.steps, full) if args.steps else full
    if device.type == "cuda":
        train = train.to(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    log(f"device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}, "
        f"train {len(train)} {args.data}, val {len(val)} {args.data}, args {vars(args)}")
    cards = []
    for variant in args.variants.split(","):
        cards.append(train_one(variant, args, train, val, holdout, device, log))
    if not args.bench:
        hyper = {k: v for k, v in vars(args).items()
                 if k not in ("train", "val", "out", "variants", "bench", "corpus", "holdout_note")}
        with open(os.path.join(args.out, "cards.json"), "w") as f:
            json.dump({"corpus": args.corpus,
                       "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                       "torch": torch.__version__, "seed": args.seed, "hyperparameters": hyper,
                       "models": cards, "log": log_lines}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
