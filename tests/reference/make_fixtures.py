#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures the C++ forward is checked against.

  python3 tests/reference/make_fixtures.py [--models-only] [--check-only]

1. Runs self_check() (RoPE++ scores vs the complex sum of ROPEPP.md section 1,
   float32 fast/SDPA mode vs float64) and aborts on failure.
2. (Re)writes the extra tiny models under tests/data/reference_models/
   (numpy + safetensors, deterministic seeds; same weight recipe as
   tests/tools/make_test_models.py but configurable dimensions).
3. Runs tests/reference/torch_reference.py (float64) on every case and writes
   tests/data/fixtures/<case>.safetensors (safetensors.numpy; float32 arrays,
   tokens int32) and tests/data/fixtures/index.json.

Fixture tensors (B = batch, T = tokens, V = vocab, h = hidden):
  tokens          I32 [B, T]
  logits          F32 [B, T, V]
  nll             F32 [B, T-1]   nll[b,t] = -log softmax(logits[b,t])[tokens[b,t+1]]
  hidden.{l}      F32 [B, T, h]  residual stream after layer l (before the final norm)
  probs.{l}.{a}   F32 [B, T, T]  attention probabilities of attention head a (0 above the diagonal)
  scores.{l}.{a}  F32 [B, T, T]  pre-softmax scores q.k*d^-0.5 (incl. YaRN magnitude^2), masked -> 0
  virtual_im.{l}.{a} F32 [B, T, T]  (virtual_imaginary cases) imaginary-query scores of a RoPE head
Maps are stored for every attention head of layer 0 and the last head of the
last layer; the long case stores no maps. Output is byte-for-byte reproducible.
tests/reference/check_against_transformers.py (optional, needs transformers)
re-checks every fixture against HF LlamaForCausalLM.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import safetensors.numpy
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import torch_reference as ref  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "data", "fixtures")
REF_MODELS = os.path.join(ROOT, "tests", "data", "reference_models")

# ----------------------------------------------------------------------------------------------
# Extra tiny models

SMALL = dict(vocab_size=64, hidden_size=32, intermediate_size=32, num_hidden_layers=2, head_dim=16,
             rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=256)

# name -> spec. H/KV are config.json's num_attention_heads / num_key_value_heads.
EXTRA_MODELS = {
    # no GQA, fp32, attention_bias + mlp_bias
    "rope_mha_bias": dict(seed=101, variant="rope", H=2, KV=2, dtype="float32", tied=False, bias=True),
    # EC without GQA, fp32, tied embeddings
    "ec_mha_tied": dict(seed=102, variant="ec", H=2, KV=2, dtype="float32", tied=True),
    # EH without GQA (Q = 2, KV = 2, A = 4)
    "eh_mha": dict(seed=103, variant="eh", H=4, KV=4, dtype="bfloat16", tied=False),
    # partial rotary 0.5 on EC with GQA (Q = 2, KV = 1, A = 4, G = 4)
    "ec_partial": dict(seed=104, variant="ec", H=2, KV=1, dtype="bfloat16", tied=False,
                       extra={"partial_rotary_factor": 0.5}),
    "rope_linear": dict(seed=105, variant="rope", H=2, KV=1, dtype="bfloat16", tied=True,
                        extra={"max_position_embeddings": 16,
                               "rope_scaling": {"type": "linear", "factor": 4.0}}),
    "eh_dynamic": dict(seed=106, variant="eh", H=2, KV=2, dtype="bfloat16", tied=False,
                       extra={"max_position_embeddings": 16,
                              "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}),
    "ec_yarn": dict(seed=107, variant="ec", H=1, KV=1, dtype="bfloat16", tied=False,
                    extra={"max_position_embeddings": 16, "rope_theta": 500.0,
                           "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}),
    "rope_llama3": dict(seed=108, variant="rope", H=2, KV=1, dtype="bfloat16", tied=False,
                        extra={"max_position_embeddings": 128, "rope_theta": 500.0,
                               "rope_parameters": {"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0,
                                                   "low_freq_factor": 1.0, "high_freq_factor": 2.0,
                                                   "original_max_position_embeddings": 16}}),
    "ec_ropepp_yarn": dict(seed=109, variant="ec", H=1, KV=1, dtype="bfloat16", tied=False,
                           rope_config={"imag": True, "imag_mode": "imag2", "yarn": True, "factor": 4.0},
                           extra={"max_position_embeddings": 64}),
}

ST_DTYPE = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def model_tensors(spec, dims):
    """(name, shape, kind) in generation order."""
    H, KV, d, h = spec["H"], spec["KV"], dims["head_dim"], dims["hidden_size"]
    inter, V = dims["intermediate_size"], dims["vocab_size"]
    q, kv, a = {"rope": (H, KV, H), "ec": (H, KV, 2 * H), "eh": (H // 2, KV // 2, H)}[spec["variant"]]
    bias = spec.get("bias", False)
    out = [("model.embed_tokens.weight", (V, h), "embed")]
    for i in range(dims["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out.append((p + "input_layernorm.weight", (h,), "norm"))
        for nm, rows, cols in (("q_proj", q * d, h), ("k_proj", kv * d, h), ("v_proj", kv * d, h),
                               ("o_proj", h, a * d)):
            out.append((p + f"self_attn.{nm}.weight", (rows, cols), "linear"))
            if bias:
                out.append((p + f"self_attn.{nm}.bias", (rows,), "bias"))
        out.append((p + "post_attention_layernorm.weight", (h,), "norm"))
        for nm, rows, cols in (("gate_proj", inter, h), ("up_proj", inter, h), ("down_proj", h, inter)):
            out.append((p + f"mlp.{nm}.weight", (rows, cols), "linear"))
            if bias:
                out.append((p + f"mlp.{nm}.bias", (rows,), "bias"))
    out.append(("model.norm.weight", (h,), "norm"))
    if not spec["tied"]:
        out.append(("lm_head.weight", (V, h), "linear"))
    return out


def write_model(directory, spec, dims=SMALL):
    """Deterministic HF Llama checkpoint: embeddings N(0,1), Linear [out,in] N(0,1/in), norms
    1+N(0,0.1^2), biases N(0,0.1^2); float32 draws from default_rng(seed), rounded (RNE) to dtype."""
    from safetensors.torch import save_file

    dims = dict(dims)
    extra = dict(spec.get("extra", {}))
    for k in list(extra):
        if k in dims:
            dims[k] = extra.pop(k)
    rng = np.random.default_rng(spec["seed"])
    tensors = {}
    for name, shape, kind in model_tensors(spec, dims):
        x = rng.standard_normal(shape, dtype=np.float32)
        if kind == "linear":
            x = x / np.float32(math.sqrt(shape[1]))
        elif kind == "norm":
            x = np.float32(1) + np.float32(0.1) * x
        elif kind == "bias":
            x = np.float32(0.1) * x
        tensors[name] = torch.from_numpy(x).to(ST_DTYPE[spec["dtype"]]).contiguous()
    os.makedirs(directory, exist_ok=True)
    for old in os.listdir(directory):
        os.remove(os.path.join(directory, old))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", **dims,
              "num_attention_heads": spec["H"], "num_key_value_heads": spec["KV"],
              "tie_word_embeddings": spec["tied"], "attention_bias": spec.get("bias", False),
              "mlp_bias": spec.get("bias", False), "torch_dtype": spec["dtype"], **extra}
    rc = spec.get("rope_config")
    if rc is None:
        rc = {"imag": False} if spec["variant"] == "rope" else \
            {"imag": True, "imag_mode": {"ec": "imag2", "eh": "imag1"}[spec["variant"]]}
    config["rope_config"] = rc
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})


def write_bench_model(directory, seed=7):
    """Benchmark model: EC, hidden 256, 4 layers, 4 q / 2 kv heads, d 64, MLP 768, vocab 256, fp32."""
    dims = dict(vocab_size=256, hidden_size=256, intermediate_size=768, num_hidden_layers=4, head_dim=64,
                rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=4096)
    write_model(directory, dict(seed=seed, variant="ec", H=4, KV=2, dtype="float32", tied=False), dims)


# ----------------------------------------------------------------------------------------------
# Self-check


def self_check():
    g = torch.Generator().manual_seed(1234)
    for d, base, partial in ((16, 1e4, 1.0), (128, 5e5, 1.0), (64, 1e4, 0.5)):
        cfg = ref.RefConfig(vocab_size=1, hidden_size=d, intermediate_size=1, num_hidden_layers=1,
                            num_attention_heads=1, num_key_value_heads=1, head_dim=d, rms_norm_eps=1e-6,
                            max_position_embeddings=4096, tie_word_embeddings=False, attention_bias=False,
                            mlp_bias=False, rope_theta=base, partial_rotary_factor=partial)
        r = cfg.rotary_dim
        theta, mag = ref.rope_frequencies(cfg, 0)
        T = 3000
        cos, sin = ref.cos_sin(theta, mag, T)
        for _ in range(20):
            q = torch.randn(d, generator=g, dtype=torch.float64)
            k = torch.randn(d, generator=g, dtype=torch.float64)
            t, s = (int(x) for x in torch.randint(0, T, (2,), generator=g))
            kt = ref.rope_real(k, cos[s], sin[s])
            re = float(ref.rope_real(q, cos[t], sin[t]) @ kt)
            im = float(ref.rope_imag(q, cos[t], sin[t]) @ kt)
            h = r // 2
            qc = torch.complex(q[:h], q[h:r])
            kc = torch.complex(k[:h], k[h:r])
            z = (qc * kc.conj() * torch.exp(1j * theta * (t - s))).sum()
            rest = float(q[r:] @ k[r:])  # non-rotating dims: plain dot product (real and imaginary heads)
            # R_t R_{-pi/2} q: rotate the query by -pi/2 in every rotary pair first
            qm = torch.cat([q[h:r], -q[:h], q[r:]])  # (a + ib) * (-i) = b - ia
            im2 = float(ref.rope_real(qm, cos[t], sin[t]) @ kt)
            tol = 1e-10 * (1 + float(q.abs().sum() * k.abs().sum()))
            assert abs(re - (z.real.item() + rest)) < tol, (re, z)
            assert abs(im - (z.imag.item() + rest)) < tol, (im, z)
            assert abs(im - (-(z.conj()).imag.item() + rest)) < tol
            assert abs(im - im2) < tol
    # float32 fast (SDPA) mode agrees with float64 reference
    for m in ("ec", "eh", "rope"):
        md = os.path.join(ROOT, "tests", "data", "models", m)
        tok = torch.randint(0, 256, (1, 50), generator=g)
        a = ref.Reference(md).forward(tok)["logits"]
        b = ref.Reference(md, dtype=torch.float32, fast=True).forward(tok)["logits"]
        err = (a - b.double()).abs().max().item()
        assert err < 1e-3, (m, err)
    print("self-check: real = Re z, imaginary = +Im z = -Im conj(z) (z = sum q~ conj(k~) e^{i theta (t-s)}), "
          "imag head = RoPE of the query rotated by -pi/2; fast float32/SDPA vs float64 ok", flush=True)


# ----------------------------------------------------------------------------------------------
# Cases


def CASE(case, model_dir, notes, B=2, T=40, seed=None, ablate=None, virtual_imaginary=False, maps=True):
    return dict(case=case, model_dir=model_dir, notes=notes, B=B, T=T, seed=seed, ablate=ablate,
                virtual_imaginary=virtual_imaginary, maps=maps)


M, R = "tests/data/models/", "tests/data/reference_models/"
TX = 24  # T of the cases on the extra models (keeps the committed data under 3 MB); still > 16 = their L
CASES = [
    CASE("rope", M + "rope", "vanilla RoPE, GQA (H 4 / KV 2), bf16, untied"),
    CASE("ec", M + "ec", "RoPE++ EC (imag2), GQA (Q 4, KV 2, A 8, G 4), bf16, untied"),
    CASE("eh", M + "eh", "RoPE++ EH (imag1), GQA (Q 2, KV 1, A 4, G 4), bf16, untied"),
    CASE("eh_tied", M + "eh_tied", "EH told from tensor shapes (no rope_config), f16, tied lm_head"),
    CASE("rope_sharded_virtual_im", M + "rope_sharded",
         "two shards + ignored inv_freq, variant from shapes; virtual imaginary scores of every mapped head",
         virtual_imaginary=True),
    CASE("rope_mha_bias", R + "rope_mha_bias", "RoPE without GQA (H = KV = 2), fp32, attention_bias + mlp_bias "
         "(q/k/v/o and gate/up/down biases)", T=TX),
    CASE("ec_mha_tied", R + "ec_mha_tied", "EC without GQA (Q 2, KV 2, A 4, G 2), fp32, tied", T=TX),
    CASE("eh_mha", R + "eh_mha", "EH without GQA (config H = KV = 4: Q 2, KV 2, A 4, G 2), bf16", T=TX),
    CASE("ec_partial", R + "ec_partial", "EC, partial_rotary_factor 0.5 (r = 8 of d = 16, dims 8..15 pass "
         "through unchanged in real and imaginary heads), GQA G 4", T=TX),
    CASE("rope_linear", R + "rope_linear", "rope_scaling {type: linear, factor 4}, tied", T=TX),
    CASE("eh_dynamic", R + "eh_dynamic", "HF dynamic NTK factor 2, L = max_position_embeddings 16, T 24 > L: "
         "base' = 1e4 * (2*24/16 - 1)^(16/14)", T=TX),
    CASE("ec_yarn", R + "ec_yarn", "HF yarn factor 4, base 500, L = max_position_embeddings 16 (no "
         "original_max_position_embeddings): ramp lo 0 hi 2, attention factor 0.1 ln 4 + 1", T=TX),
    CASE("rope_llama3", R + "rope_llama3", "llama3 via rope_parameters: base 500, factor 8, low 1, high 2, "
         "original 16 (pair 0 high-freq, 1 medium, 2+ low-freq)", T=TX),
    CASE("ec_ropepp_yarn", R + "ec_ropepp_yarn", "rope_config {yarn: true, factor 4}: RoPE++ reference YaRN, "
         "original length 4096 (hard-coded), magnitude 0.1 ln 4 + 1", T=TX),
    CASE("ec_ablate_imaginary", R + "ec_mha_tied", "all imaginary attention heads (odd a) zeroed before o_proj, "
         "every layer", T=TX, ablate="imaginary"),
    CASE("eh_ablate_real", R + "eh_mha", "all real attention heads (even a) zeroed before o_proj, every layer",
         T=TX, ablate="real"),
    CASE("ec_long", M + "ec", "T 300, B 1: blocked attention (block sizes 64-128); no maps", B=1, T=300, maps=False),
]


def run_case(c, index_seed):
    model = ref.Reference(os.path.join(ROOT, c["model_dir"]))
    cfg = model.cfg
    rng = np.random.default_rng(1000 + index_seed)
    tokens = rng.integers(0, cfg.vocab_size, size=(c["B"], c["T"]), dtype=np.int64).astype(np.int32)
    L = cfg.num_hidden_layers
    heads = [(0, a) for a in range(model.A)] + [(L - 1, model.A - 1)] if c["maps"] else []
    out = model.forward(torch.from_numpy(tokens.astype(np.int64)), ablate=c["ablate"],
                        virtual_imaginary=c["virtual_imaginary"], map_heads=heads or None)
    f32 = lambda t: np.ascontiguousarray(t.numpy().astype(np.float32))  # noqa: E731
    arrays = {"tokens": tokens, "logits": f32(out["logits"]), "nll": f32(out["nll"])}
    for l, h in enumerate(out["hidden"]):
        arrays[f"hidden.{l}"] = f32(h)
    for (l, a) in heads:
        arrays[f"probs.{l}.{a}"] = f32(out["probs"][(l, a)])
        arrays[f"scores.{l}.{a}"] = f32(out["scores"][(l, a)])
        if c["virtual_imaginary"]:
            arrays[f"virtual_im.{l}.{a}"] = f32(out["virtual_im"][(l, a)])
    # consistency: nll from logits (float64)
    lp = torch.log_softmax(out["logits"], -1)
    nll2 = -lp[:, :-1].gather(-1, torch.from_numpy(tokens[:, 1:].astype(np.int64))[..., None])[..., 0]
    assert torch.allclose(nll2, out["nll"], atol=1e-12)
    path = os.path.join(FIXTURES, c["case"] + ".safetensors")
    safetensors.numpy.save_file(arrays, path, metadata={"generator": "tests/reference/make_fixtures.py"})
    # (one metadata key only: safetensors writes the metadata map in hash order)
    return model, os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--models-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    self_check()
    if args.check_only:
        return
    for name, spec in EXTRA_MODELS.items():
        write_model(os.path.join(REF_MODELS, name), spec)
    if args.models_only:
        return
    os.makedirs(FIXTURES, exist_ok=True)
    index = []
    for i, c in enumerate(CASES):
        model, size = run_case(c, i)
        print(f"{c['case']:26s} {model.variant:4s} Q{model.Q} KV{model.KV} A{model.A} "
              f"B{c['B']} T{c['T']} {size / 1024:.0f} KiB", flush=True)
        index.append({"case": c["case"], "model_dir": c["model_dir"], "tokens_shape": [c["B"], c["T"]],
                      "notes": c["notes"], "ablate": c["ablate"], "virtual_imaginary": c["virtual_imaginary"]})
    with open(os.path.join(FIXTURES, "index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
