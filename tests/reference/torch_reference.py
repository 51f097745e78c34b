"""Independent PyTorch reference of the HF Llama forward for RoPE, RoPE++ EC
("imag2") and RoPE++ EH ("imag1") checkpoints (ROPEPP.md sections 1, 3, 4).

Written from the math, not from ropescope's C++. Default precision is float64
throughout: weights are upcast exactly from BF16/F16/F32, frequencies theta_n
are computed in float64 from the formulas below, angles t * theta_n are float64
products, cos/sin are float64. `dtype=torch.float32, fast=True` is the
"what a PyTorch user gets" mode used by bench/torch_forward_baseline.py
(attention through torch.nn.functional.scaled_dot_product_attention).

Checkpoint conventions (ROPEPP.md section 4; src/model/head_layout.hpp):
  Q = q_proj rows / d, KV = k_proj rows / d, A = o_proj columns / d, G = A / KV.
  rope: A = Q, every head real.   ec / eh: A = 2Q, attention head 2j is the real
  head of query head j, 2j+1 its imaginary twin. Attention head a reads KV head
  a // G. With H, KV' = config num_attention_heads / num_key_value_heads:
  rope Q=H KV=KV'; ec Q=H KV=KV' A=2H; eh Q=H/2 KV=KV'/2 A=H.
  The variant comes from config.json rope_config {"imag", "imag_mode"} when
  present, else from tensor shapes (o cols == q rows: rope; o cols == 2 q rows:
  ec if q rows == H d, eh if q rows == H d / 2).

RoPE (HF rotate_half layout): rotary dims r = int(d * partial_rotary_factor);
pair n = (x[n], x[n + r/2]) for n < r/2, dims r..d-1 pass through unchanged
(also for imaginary heads: the -pi/2 rotation acts on rotary pairs only).
  cos = m*[cos(t th), cos(t th)], sin = m*[sin(t th), sin(t th)], m = magnitude
  q_re = q cos + rotate_half(q) sin      k = k cos + rotate_half(k) sin
  q_im = q sin - rotate_half(q) cos      (= R_t R_{-pi/2} q)
  score = q_x . k * d^-0.5, causal softmax.
Checked: tests/reference/check_against_transformers.py runs every fixture
through transformers 5.23 LlamaForCausalLM (RoPE++ heads rewritten as vanilla
heads); max |diff| of logits <= 6e-6 (HF uses float32 angles).

Sign note: with q~_n = q[n] + i q[n + r/2] and z = sum_n q~_n conj(k~_n)
e^{i th_n (t-s)}, the real score is Re z and the imaginary score (the formula
above) is +Im z = -Im conj(z). See make_fixtures.self_check.

Position scaling, theta_n = base^(-2n/r), n < r/2, s = factor:
  linear        theta_n / s
  dynamic (HF)  base' = base * (s*T'/L - (s-1))^(r/(r-2)), T' = max(T, L),
                L = rope_scaling original_max_position_embeddings if given, else
                max_position_embeddings (transformers 5.23 always uses
                max_position_embeddings; the fixture gives no original field),
                T = sequence length of the forward (positions 0..T-1).
  yarn (HF)     L = original_max_position_embeddings or max_position_embeddings;
                corr(rot) = r ln(L/(rot 2 pi)) / (2 ln base);
                lo = max(floor(corr(beta_fast)), 0), hi = min(ceil(corr(beta_slow)), r-1)
                (no floor/ceil when truncate is false); if lo == hi: hi += 0.001;
                ramp_n = clip((n - lo)/(hi - lo), 0, 1);
                theta'_n = theta_n/s * ramp_n + theta_n * (1 - ramp_n);
                magnitude = attention_factor if given, else
                mscale(s, mscale)/mscale(s, mscale_all_dim) if both given, else
                mscale(s) with mscale(s, m=1) = 0.1 m ln s + 1 (1 if s <= 1).
                (transformers 5.x derives s = max_position_embeddings / original
                only when factor is absent, and lets a top-level (Phi3-style)
                original_max_position_embeddings win; neither is done here and the
                fixtures use neither, and no original field inside rope_scaling.)
  llama3 (HF)   wl_n = 2 pi / theta_n; L = original_max_position_embeddings;
                wl > L/low: theta/s; wl < L/high: theta; else
                g = (L/wl - low)/(high - low), theta' = (1-g) theta/s + g theta.
  rope_config {"yarn": true, "factor": s} (RoPE++ reference code):
                r_n = 4096 theta_n / (2 pi), g = clip((r_n - 1)/31, 0, 1),
                theta' = (1-g) theta/s + g theta, magnitude 0.1 ln s + 1.
                Original length 4096 hard-coded (as the reference code and
                ropescope's src/model/config.cpp do), NOT max_position_embeddings.
  rope_config {"factor": s} without yarn: linear (as src/model/config.cpp maps it).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import torch
from safetensors import safe_open

__all__ = ["RefConfig", "load_config", "rope_frequencies", "Reference", "load_model"]


# ----------------------------------------------------------------------------------------------
# config.json


@dataclass
class Scaling:
    type: str = "none"  # none, linear, dynamic, yarn, llama3, yarn_ropepp
    factor: float = 1.0
    original_max_position: int | None = None  # None: not given in config
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    mscale: float | None = None
    mscale_all_dim: float | None = None
    attention_factor: float | None = None
    truncate: bool = True
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0


@dataclass
class RefConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    attention_bias: bool
    mlp_bias: bool
    rope_theta: float
    partial_rotary_factor: float
    scaling: Scaling = field(default_factory=Scaling)
    rope_config_variant: str | None = None  # rope / ec / eh from rope_config, None when absent

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)


_HF_NAMES = {"default": "none", "linear": "linear", "dynamic": "dynamic", "yarn": "yarn", "llama3": "llama3"}


def _parse_scaling(obj: dict) -> Scaling:
    name = obj.get("rope_type") or obj.get("type")
    if name is None:
        raise ValueError("rope scaling object without rope_type/type")
    if name not in _HF_NAMES:
        raise ValueError(f"unsupported rope scaling type {name!r}")
    s = Scaling(type=_HF_NAMES[name])
    if s.type == "none":
        return s
    s.factor = float(obj["factor"])
    if obj.get("original_max_position_embeddings") is not None:
        s.original_max_position = int(obj["original_max_position_embeddings"])
    # HF: `get("beta_fast") or 32` (so 0/None fall back to the defaults)
    s.beta_fast = float(obj.get("beta_fast") or 32.0)
    s.beta_slow = float(obj.get("beta_slow") or 1.0)
    s.mscale = obj.get("mscale")
    s.mscale_all_dim = obj.get("mscale_all_dim")
    s.attention_factor = obj.get("attention_factor")
    s.truncate = bool(obj.get("truncate", True))
    s.low_freq_factor = float(obj.get("low_freq_factor", 1.0))
    s.high_freq_factor = float(obj.get("high_freq_factor", 4.0))
    return s


def load_config(model_dir: str) -> RefConfig:
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    H = int(c["num_attention_heads"])
    cfg = RefConfig(
        vocab_size=int(c["vocab_size"]),
        hidden_size=int(c["hidden_size"]),
        intermediate_size=int(c["intermediate_size"]),
        num_hidden_layers=int(c["num_hidden_layers"]),
        num_attention_heads=H,
        num_key_value_heads=int(c.get("num_key_value_heads") or H),
        head_dim=int(c.get("head_dim") or c["hidden_size"] // H),
        rms_norm_eps=float(c.get("rms_norm_eps", 1e-6)),
        max_position_embeddings=int(c.get("max_position_embeddings", 2048)),
        tie_word_embeddings=bool(c.get("tie_word_embeddings", False)),
        attention_bias=bool(c.get("attention_bias", False)),
        mlp_bias=bool(c.get("mlp_bias", False)),
        rope_theta=float(c.get("rope_theta", 10000.0)),
        partial_rotary_factor=float(c.get("partial_rotary_factor", 1.0)),
    )
    rs, rp = c.get("rope_scaling"), c.get("rope_parameters")
    if rs is not None and rp is not None:
        raise ValueError("both rope_scaling and rope_parameters given")
    if rs is not None:
        cfg.scaling = _parse_scaling(rs)
    if rp is not None:  # transformers 5 form: also carries rope_theta / partial_rotary_factor
        cfg.scaling = _parse_scaling(rp)
        if rp.get("rope_theta") is not None:
            cfg.rope_theta = float(rp["rope_theta"])
        if rp.get("partial_rotary_factor") is not None:
            cfg.partial_rotary_factor = float(rp["partial_rotary_factor"])
    rc = c.get("rope_config")
    if rc is not None:
        if rc.get("imag", False):
            cfg.rope_config_variant = {"imag1": "eh", "imag2": "ec"}[rc["imag_mode"]]
        else:
            cfg.rope_config_variant = "rope"
        if rc.get("yarn", False) or rc.get("factor") is not None:
            if cfg.scaling.type != "none":
                raise ValueError("rope_config scaling and rope_scaling both given")
            cfg.scaling = Scaling(type="yarn_ropepp" if rc.get("yarn", False) else "linear",
                                  factor=float(rc["factor"]), original_max_position=4096)
    return cfg


# ----------------------------------------------------------------------------------------------
# Frequencies (float64)


def _mscale(s: float, m: float = 1.0) -> float:
    return 1.0 if s <= 1.0 else 0.1 * m * math.log(s) + 1.0


def rope_frequencies(cfg: RefConfig, seq_len: int) -> tuple[torch.Tensor, float]:
    """(theta float64 [r/2], magnitude) for a forward over positions 0 .. seq_len-1."""
    r = cfg.rotary_dim
    if r < 2 or r % 2:
        raise ValueError(f"rotary dim {r} must be even and >= 2")
    sc = cfg.scaling
    base = cfg.rope_theta
    n = torch.arange(r // 2, dtype=torch.float64)
    if sc.type == "dynamic":
        L = sc.original_max_position or cfg.max_position_embeddings
        T = max(seq_len, L)
        base = base * ((sc.factor * T / L) - (sc.factor - 1.0)) ** (r / (r - 2))
    theta = base ** (-2.0 * n / r)  # float64 pow
    mag = 1.0
    if sc.type in ("none", "dynamic"):
        pass
    elif sc.type == "linear":
        theta = theta / sc.factor
    elif sc.type == "yarn":
        L = sc.original_max_position or cfg.max_position_embeddings
        s = sc.factor

        def corr(rot):
            return (r * math.log(L / (rot * 2.0 * math.pi))) / (2.0 * math.log(cfg.rope_theta))

        lo, hi = corr(sc.beta_fast), corr(sc.beta_slow)
        if sc.truncate:
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, r - 1)
        if lo == hi:
            hi += 0.001
        ramp = torch.clamp((n - lo) / (hi - lo), 0.0, 1.0)
        theta = (theta / s) * ramp + theta * (1.0 - ramp)
        if sc.attention_factor is not None:
            mag = float(sc.attention_factor)
        elif sc.mscale and sc.mscale_all_dim:
            mag = _mscale(s, sc.mscale) / _mscale(s, sc.mscale_all_dim)
        else:
            mag = _mscale(s)
    elif sc.type == "llama3":
        L = sc.original_max_position
        if L is None:
            raise ValueError("llama3 scaling needs original_max_position_embeddings")
        s, low, high = sc.factor, sc.low_freq_factor, sc.high_freq_factor
        wl = 2.0 * math.pi / theta
        g = (L / wl - low) / (high - low)
        smooth = (1.0 - g) * theta / s + g * theta
        out = torch.where(wl > L / low, theta / s, theta)
        medium = (wl >= L / high) & (wl <= L / low)
        theta = torch.where(medium, smooth, out)
    elif sc.type == "yarn_ropepp":
        s = sc.factor
        rot = sc.original_max_position * theta / (2.0 * math.pi)
        g = torch.clamp((rot - 1.0) / (32.0 - 1.0), 0.0, 1.0)
        theta = (1.0 - g) * theta / s + g * theta
        mag = 0.1 * math.log(s) + 1.0
    else:
        raise ValueError(sc.type)
    return theta, mag


def cos_sin(theta: torch.Tensor, mag: float, seq_len: int, dtype=torch.float64):
    """cos, sin [T, r] in HF layout, computed in float64 then cast to dtype."""
    t = torch.arange(seq_len, dtype=torch.float64)
    ang = t[:, None] * theta[None, :]  # float64 product t * theta_n
    c, s = torch.cos(ang) * mag, torch.sin(ang) * mag
    return torch.cat([c, c], -1).to(dtype), torch.cat([s, s], -1).to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def rope_real(x, cos, sin):
    r = cos.shape[-1]
    xr = x[..., :r]
    return torch.cat([xr * cos + rotate_half(xr) * sin, x[..., r:]], -1)


def rope_imag(x, cos, sin):
    r = cos.shape[-1]
    xr = x[..., :r]
    return torch.cat([xr * sin - rotate_half(xr) * cos, x[..., r:]], -1)


# ----------------------------------------------------------------------------------------------
# Weights and model


def load_tensors(model_dir: str, dtype=torch.float64) -> dict[str, torch.Tensor]:
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        with safe_open(os.path.join(model_dir, fn), framework="pt") as f:
            for name in f.keys():
                if name.endswith("rotary_emb.inv_freq"):
                    continue
                out[name] = f.get_tensor(name).to(dtype)  # exact upcast from bf16/f16/f32
    return out


def detect_variant(cfg: RefConfig, w: dict) -> str:
    if cfg.rope_config_variant is not None:
        return cfg.rope_config_variant
    d, H = cfg.head_dim, cfg.num_attention_heads
    q = w["model.layers.0.self_attn.q_proj.weight"].shape[0]
    o = w["model.layers.0.self_attn.o_proj.weight"].shape[1]
    if o == q:
        return "rope"
    if o == 2 * q:
        if q == H * d:
            return "ec"
        if 2 * q == H * d:
            return "eh"
    raise ValueError(f"cannot tell the variant from q rows {q}, o columns {o}, H {H}, d {d}")


class Reference:
    def __init__(self, model_dir: str, dtype=torch.float64, fast: bool = False, variant: str | None = None):
        self.cfg = load_config(model_dir)
        self.w = load_tensors(model_dir, dtype)
        self.dtype = dtype
        self.fast = fast
        cfg, w, d = self.cfg, self.w, self.cfg.head_dim
        self.variant = variant or detect_variant(cfg, w)
        self.Q = w["model.layers.0.self_attn.q_proj.weight"].shape[0] // d
        self.KV = w["model.layers.0.self_attn.k_proj.weight"].shape[0] // d
        self.A = w["model.layers.0.self_attn.o_proj.weight"].shape[1] // d
        expect = {"rope": (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_attention_heads),
                  "ec": (cfg.num_attention_heads, cfg.num_key_value_heads, 2 * cfg.num_attention_heads),
                  "eh": (cfg.num_attention_heads // 2, cfg.num_key_value_heads // 2, cfg.num_attention_heads)}
        if (self.Q, self.KV, self.A) != expect[self.variant]:
            raise ValueError(f"{model_dir}: tensors give Q,KV,A={self.Q, self.KV, self.A}, "
                             f"{self.variant} expects {expect[self.variant]}")
        self.G = self.A // self.KV
        if "lm_head.weight" in w and not cfg.tie_word_embeddings:
            self.lm_head = w["lm_head.weight"]
        else:
            self.lm_head = w["model.embed_tokens.weight"]

    # head facts ------------------------------------------------------------------------------
    def head_kind(self, a: int) -> str:
        return "real" if self.variant == "rope" or a % 2 == 0 else "imaginary"

    def query_head(self, a: int) -> int:
        return a if self.variant == "rope" else a // 2

    def kv_head(self, a: int) -> int:
        return a // self.G

    # pieces -----------------------------------------------------------------------------------
    def _linear(self, x, name):
        y = x @ self.w[name + ".weight"].T
        b = self.w.get(name + ".bias")
        return y if b is None else y + b

    def _rmsnorm(self, x, name):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.cfg.rms_norm_eps) * self.w[name]

    def _ablated_heads(self, ablate, layer):
        if ablate is None:
            return []
        if ablate in ("real", "imaginary"):
            return [a for a in range(self.A) if self.head_kind(a) == ablate]
        out = []
        for item in ablate:
            if isinstance(item, (tuple, list)):
                if item[0] == layer:
                    out.append(int(item[1]))
            else:
                out.append(int(item))
        return out

    # forward ----------------------------------------------------------------------------------
    def forward(self, tokens, *, ablate=None, virtual_imaginary=False, map_heads=None):
        """tokens: int tensor [B, T].
        ablate: None | "real" | "imaginary" (every layer) | list of head indices (every layer)
                | list of (layer, head).
        map_heads: None (no maps) | "all" | iterable of (layer, head): which heads' probs/scores
                (and virtual_im for rope models) to return.
        Returns dict: logits [B,T,V], nll [B,T-1], hidden (list of [B,T,h], output of each layer),
        probs/scores/virtual_im: {(layer, head): [B,T,T]} (masked entries 0)."""
        cfg, d = self.cfg, self.cfg.head_dim
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        B, T = tokens.shape
        theta, mag = rope_frequencies(cfg, T)
        cos, sin = cos_sin(theta, mag, T, self.dtype)
        want = set()
        if map_heads == "all":
            want = {(l, a) for l in range(cfg.num_hidden_layers) for a in range(self.A)}
        elif map_heads is not None:
            want = {tuple(x) for x in map_heads}
        if virtual_imaginary and self.variant != "rope":
            raise ValueError("virtual imaginary scores are for vanilla RoPE models")
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        scale = d ** -0.5

        x = self.w["model.embed_tokens.weight"][tokens]
        hidden, probs_out, scores_out, vim_out = [], {}, {}, {}
        for l in range(cfg.num_hidden_layers):
            p = f"model.layers.{l}."
            h = self._rmsnorm(x, p + "input_layernorm.weight")
            q = self._linear(h, p + "self_attn.q_proj").view(B, T, self.Q, d).transpose(1, 2)
            k = self._linear(h, p + "self_attn.k_proj").view(B, T, self.KV, d).transpose(1, 2)
            v = self._linear(h, p + "self_attn.v_proj").view(B, T, self.KV, d).transpose(1, 2)
            k = rope_real(k, cos, sin)
            q_re = rope_real(q, cos, sin)
            if self.variant == "rope":
                qa = q_re  # [B, A, T, d]
            else:  # interleave: attention head 2j real, 2j+1 imaginary of query head j
                q_im = rope_imag(q, cos, sin)
                qa = torch.stack([q_re, q_im], 2).reshape(B, self.A, T, d)
            if self.fast:
                try:
                    o = torch.nn.functional.scaled_dot_product_attention(qa, k, v, is_causal=True, enable_gqa=True)
                except TypeError:  # older torch: no enable_gqa
                    o = torch.nn.functional.scaled_dot_product_attention(
                        qa, k.repeat_interleave(self.G, 1), v.repeat_interleave(self.G, 1), is_causal=True)
            else:
                ke = k.repeat_interleave(self.G, 1)  # KV head k serves heads k*G .. k*G+G-1
                ve = v.repeat_interleave(self.G, 1)
                s = (qa @ ke.transpose(-1, -2)) * scale  # [B, A, T, T]
                s = s.masked_fill(~mask, float("-inf"))
                pr = torch.softmax(s, -1)
                o = pr @ ve
                for a in range(self.A):
                    if (l, a) in want:
                        probs_out[(l, a)] = pr[:, a].clone()
                        scores_out[(l, a)] = s[:, a].masked_fill(~mask, 0.0)
                        if virtual_imaginary:
                            qi = rope_imag(q[:, self.query_head(a)], cos, sin)
                            vs = (qi @ ke[:, a].transpose(-1, -2)) * scale
                            vim_out[(l, a)] = vs.masked_fill(~mask, 0.0)
            heads = self._ablated_heads(ablate, l)
            if heads:
                o = o.clone()
                o[:, heads] = 0.0
            o = o.transpose(1, 2).reshape(B, T, self.A * d)
            x = x + self._linear(o, p + "self_attn.o_proj")
            h = self._rmsnorm(x, p + "post_attention_layernorm.weight")
            m = torch.nn.functional.silu(self._linear(h, p + "mlp.gate_proj")) * self._linear(h, p + "mlp.up_proj")
            x = x + self._linear(m, p + "mlp.down_proj")
            hidden.append(x)
        logits = self._rmsnorm(x, "model.norm.weight") @ self.lm_head.T
        logp = torch.log_softmax(logits[:, :-1], -1)
        nll = -logp.gather(-1, tokens[:, 1:, None])[..., 0]
        return {"logits": logits, "nll": nll, "hidden": hidden, "probs": probs_out,
                "scores": scores_out, "virtual_im": vim_out}


def load_model(model_dir: str, dtype=torch.float64, fast: bool = False) -> Reference:
    return Reference(model_dir, dtype=dtype, fast=fast)
