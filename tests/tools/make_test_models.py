#!/usr/bin/env python3
"""Tiny deterministic HF Llama checkpoints in the three RoPE variants.

Writes, under OUT_DIR (default tests/data/models), one directory per model in
exactly the Hugging Face layout (config.json + model.safetensors, or shards +
model.safetensors.index.json). It uses numpy and the official `safetensors`
package only, independent of ropescope's own writer, so the C++ reader is
cross-checked against the reference format.

Every model shares the dimensions in BASE below (byte-level vocab of 256).
Head counts follow ROPEPP.md section 4 with H = num_attention_heads = 4,
KV = num_key_value_heads = 2, d = head_dim = 16:
    rope : q_proj [H*d, h]     k/v_proj [KV*d, h]     o_proj [h, H*d]
    ec   : q_proj [H*d, h]     k/v_proj [KV*d, h]     o_proj [h, 2H*d]
    eh   : q_proj [H/2*d, h]   k/v_proj [KV/2*d, h]   o_proj [h, H*d]

Weights: embeddings ~ N(0, 1); every Linear weight [out, in] ~ N(0, 1/in);
RMSNorm weights 1 + N(0, 0.1^2). Values are drawn in float32 from
numpy.random.default_rng(seed) in the fixed tensor order of `tensor_list`, then
rounded to the model's dtype (BF16 and F16 round to nearest even).

Usage: make_test_models.py [OUT_DIR]
"""

import json
import os
import sys

import numpy as np
import safetensors

BASE = {
    "vocab_size": 256,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 256,
}

# name -> seed, variant, dtype, tied embeddings, shard count, rope_config (None: not written)
MODELS = {
    "rope": dict(seed=1, variant="rope", dtype="bfloat16", tied=False, shards=1,
                 rope_config={"imag": False}),
    "ec": dict(seed=2, variant="ec", dtype="bfloat16", tied=False, shards=1,
               rope_config={"imag": True, "imag_mode": "imag2"}),
    "eh": dict(seed=3, variant="eh", dtype="bfloat16", tied=False, shards=1,
               rope_config={"imag": True, "imag_mode": "imag1"}),
    # A plain HF Llama config (no rope_config: the variant comes from shapes),
    # two shards, and an old rotary_emb.inv_freq buffer the loader must ignore.
    "rope_sharded": dict(seed=4, variant="rope", dtype="bfloat16", tied=False, shards=2,
                         rope_config=None, inv_freq=True),
    # EH with tied embeddings in float16, variant inferred from shapes.
    "eh_tied": dict(seed=5, variant="eh", dtype="float16", tied=True, shards=1,
                    rope_config=None),
}

SAFETENSORS_DTYPE = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}


def head_counts(variant):
    H, KV = BASE["num_attention_heads"], BASE["num_key_value_heads"]
    if variant == "rope":
        return H, KV, H  # query heads, kv heads, attention heads
    if variant == "ec":
        return H, KV, 2 * H
    if variant == "eh":
        return H // 2, KV // 2, H
    raise ValueError(variant)


def tensor_list(spec):
    """(name, shape, kind) in generation order; kind is embed, linear or norm."""
    h, inter, V = BASE["hidden_size"], BASE["intermediate_size"], BASE["vocab_size"]
    d = BASE["head_dim"]
    q, kv, a = head_counts(spec["variant"])
    out = [("model.embed_tokens.weight", (V, h), "embed")]
    for i in range(BASE["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (h,), "norm"),
            (p + "self_attn.q_proj.weight", (q * d, h), "linear"),
            (p + "self_attn.k_proj.weight", (kv * d, h), "linear"),
            (p + "self_attn.v_proj.weight", (kv * d, h), "linear"),
            (p + "self_attn.o_proj.weight", (h, a * d), "linear"),
            (p + "post_attention_layernorm.weight", (h,), "norm"),
            (p + "mlp.gate_proj.weight", (inter, h), "linear"),
            (p + "mlp.up_proj.weight", (inter, h), "linear"),
            (p + "mlp.down_proj.weight", (h, inter), "linear"),
        ]
    out.append(("model.norm.weight", (h,), "norm"))
    if not spec["tied"]:
        out.append(("lm_head.weight", (V, h), "linear"))
    return out


def to_dtype_bytes(values, dtype):
    """float32 array -> (safetensors dtype name, little-endian uint16/float32 array)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if dtype == "float32":
        return values.astype("<f4")
    if dtype == "float16":
        return values.astype("<f2")  # numpy rounds to nearest even
    bits = values.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round to nearest even (no NaN here)
    return rounded.astype("<u2")


def save(path, tensors, metadata):
    """tensors: name -> (safetensors dtype, numpy array). Uses the official writer."""
    keep = []
    specs = {}
    for name, (st_dtype, array) in tensors.items():
        array = np.ascontiguousarray(array)
        keep.append(array)
        torch_name = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[st_dtype]
        specs[name] = safetensors.TensorSpec(dtype=torch_name, shape=list(array.shape),
                                             data_ptr=array.ctypes.data, data_len=array.nbytes)
    safetensors.serialize_file(specs, str(path), metadata=metadata)


def make_model(out_dir, name, spec):
    rng = np.random.default_rng(spec["seed"])
    tensors = {}
    for tname, shape, kind in tensor_list(spec):
        if kind == "embed":
            values = rng.standard_normal(shape, dtype=np.float32)
        elif kind == "linear":
            values = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(shape[1]))
        else:
            values = np.float32(1) + np.float32(0.1) * rng.standard_normal(shape, dtype=np.float32)
        tensors[tname] = (SAFETENSORS_DTYPE[spec["dtype"]], to_dtype_bytes(values, spec["dtype"]))
    if spec.get("inv_freq"):
        d = BASE["head_dim"]
        inv = 1.0 / (BASE["rope_theta"] ** (np.arange(0, d, 2, dtype=np.float32) / d))
        tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = ("F32", inv.astype("<f4"))

    directory = os.path.join(out_dir, name)
    os.makedirs(directory, exist_ok=True)
    for old in os.listdir(directory):
        os.remove(os.path.join(directory, old))

    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_act": "silu",
        **BASE,
        "tie_word_embeddings": spec["tied"],
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": spec["dtype"],
        "rope_scaling": None,
    }
    if spec["rope_config"] is not None:
        config["rope_config"] = spec["rope_config"]
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    if spec["shards"] == 1:
        save(os.path.join(directory, "model.safetensors"), tensors, {"format": "pt"})
        return
    names = list(tensors)
    n = spec["shards"]
    weight_map = {}
    total = 0
    for k in range(n):
        shard = f"model-{k + 1:05d}-of-{n:05d}.safetensors"
        part = {t: tensors[t] for t in names[k * len(names) // n:(k + 1) * len(names) // n]}
        save(os.path.join(directory, shard), part, {"format": "pt"})
        for t, (_, array) in part.items():
            weight_map[t] = shard
            total += array.nbytes
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data", "models")
    for name, spec in MODELS.items():
        make_model(out_dir, name, spec)


if __name__ == "__main__":
    main()
