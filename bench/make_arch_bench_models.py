#!/usr/bin/env python3
"""Benchmark-sized random checkpoints of every architecture family, for timing the CPU forward.

  python bench/make_arch_bench_models.py OUT_DIR [--only CASE ...]

Needs the environment of tests/reference/requirements-oracle.txt (transformers, torch). Takes one
case per family from tests/reference/make_arch_fixtures.py (the same features: windows, softcaps,
qk-norm, partial and interleaved rotary, multipliers, NoPE layers) and scales it to one small shape
shared by every family: hidden 256, 4 layers, 4 query / 2 KV heads (GPT-NeoX: 4 / 4), head_dim 64,
MLP 768, vocab 1024, sliding windows 128, longrope lists of the rotary dim's length. Weights are
drawn as in the fixtures and written in float32 (config dtype float32) with save_pretrained, one
directory per case under OUT_DIR. Nothing here is committed; bench/bench_families.sh uses it.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

import make_arch_fixtures as fx  # noqa: E402

# One case per family (the fixture whose features are most complete).
BENCH_CASES = ["llama3", "mistral_swa", "qwen2", "qwen3", "granite", "smollm3", "gemma", "gemma2", "gemma3_text",
               "phi3_swa", "olmo2", "olmo3", "gpt_neox_parallel", "stablelm", "starcoder2", "cohere", "cohere2",
               "glm", "glm4"]
SHAPE = dict(vocab_size=1024, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192)
HEAD_DIM = 64
WINDOW = 128


def scaled(cfg):
    """The case's config keys at the benchmark shape."""
    out = dict(cfg)
    out.update(SHAPE)
    if "head_dim" in cfg:
        out["head_dim"] = HEAD_DIM
    if cfg.get("sliding_window"):
        out["sliding_window"] = WINDOW
    if "layer_types" in cfg:  # keep the pattern, stretched over 4 layers
        pattern = cfg["layer_types"]
        out["layer_types"] = [pattern[i % len(pattern)] for i in range(SHAPE["num_hidden_layers"])]
    if "no_rope_layers" in cfg:
        out["no_rope_layers"] = [1, 1, 1, 0]
    rp = out.get("rope_parameters")
    if isinstance(rp, dict) and "long_factor" in rp:
        prf = out.get("partial_rotary_factor", rp.get("partial_rotary_factor", 1.0))
        pairs = int(HEAD_DIM * prf) // 2
        rp = dict(rp)
        rp["short_factor"] = [1.0 + i / pairs for i in range(pairs)]
        rp["long_factor"] = [1.0 + 4.0 * i / pairs for i in range(pairs)]
        rp["original_max_position_embeddings"] = 2048
        out["rope_parameters"] = rp
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    cases = {c["name"]: c for c in fx.CASES}
    for name in args.only or BENCH_CASES:
        case = dict(cases[name])
        case["cfg"] = scaled(case["cfg"])
        if case["type"] == "gpt_neox":
            case["cfg"]["num_key_value_heads"] = 4
        model = fx.build_model(fx.build_config(case))
        fx.randomise(model, case["seed"])
        out = os.path.join(args.out, name)
        fx.save_float32(model, out)
        print(out)


if __name__ == "__main__":
    main()
