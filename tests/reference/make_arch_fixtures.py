#!/usr/bin/env python3
"""HF-transformers oracle: tiny random checkpoints of every RoPE architecture family plus
transformers' own float64 eager outputs, for the C++ "exact against transformers" tests.

  /work/oracle-venv/bin/python tests/reference/make_arch_fixtures.py [--out DIR] [--only CASE ...]

Needs the pinned environment of tests/reference/requirements-oracle.txt (transformers 5.24.0,
torch, numpy, safetensors); CI does not run this, it reads the committed output.

For every case in CASES (ARCHITECTURES.md sections 1.10-1.12 and 4.2-4.3 say what each one must
exercise) it writes tests/data/arch/<case>/:
  config.json, model.safetensors  as save_pretrained (v5) writes them, in float32. "v4" cases get
                                  a hand-written transformers-4 style config.json (top-level
                                  rope_theta / rope_scaling with "type", rotary_pct, ...), verified
                                  by reloading it and reproducing the v5 model's outputs.
                                  generation_config.json is not kept.
  expected.safetensors            (not for "refuse" cases), per run r:
                                    tokens.{r}    I32 [T]       random ids in [0, vocab)
                                    logits.{r}    F64 [T, V]    model(ids).logits[0], float64 eager
                                    probs.{r}.{l} F32 [H, T, T] output_attentions of layer l
                                  The runs of a case share a token prefix (run r uses the first T_r
                                  tokens of one draw).
  case.json                       family, architectures, config_form, runs, features, expect,
                                  refuse_reason, transformers / torch versions.
and tests/data/arch/index.json (the case names in order).

Weights: AutoModelForCausalLM.from_config(cfg, dtype=float64, attn_implementation="eager"),
.eval(), then every parameter is redrawn in named_parameters() order from a seeded
torch.Generator: parameters HF initialises to a constant (norm weights 1, Gemma (1+w) offsets 0,
biases 0) become init + N(0, 0.2^2); every other tensor N(0, 0.3^2). All parameters are then
rounded to float32 (the checkpoint is float32) and the reference forward runs in float64 on
those rounded weights, each run on a fresh copy of the model (no dynamic-RoPE state leaks).

Self-checks (abort on failure): from_pretrained(float64) of each written directory reproduces
the stored logits and probabilities bit for bit (v4 cases: the v4 config means the same model);
sliding-window layers have probabilities exactly 0 at distance >= W and nonzero at W-1, the
other layers nonzero beyond W; multi-run RoPE-switch cases (longrope, dynamic NTK) take
different paths (the logits of the shared prefix differ); the multimodal Gemma 3 text part
equals a Gemma3ForCausalLM built from its text_config.

Deterministic: single-threaded torch, fixed seeds; running it twice gives identical bytes.
"""

import argparse
import copy
import json
import os
import shutil
import sys

import numpy as np
import safetensors.numpy
import safetensors.torch
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "arch")

MATRIX_STD = 0.3
VECTOR_STD = 0.2

# Shared tiny dimensions; each case overrides what it needs.
BASE = dict(vocab_size=64, hidden_size=32, intermediate_size=12, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
            pad_token_id=0, bos_token_id=1, eos_token_id=2)

LONGROPE_SHORT = [1.0, 1.25, 1.5, 2.0, 3.0, 4.0]
LONGROPE_LONG = [1.5, 2.5, 4.0, 6.0, 9.0, 16.0]


def phi3_longrope():
    return dict(rope_type="longrope", rope_theta=10000.0, short_factor=LONGROPE_SHORT,
                long_factor=LONGROPE_LONG)


# ----------------------------------------------------------------------------------------------
# v4 config.json rewrites (transformers-4 style, as real Hub files have them)

def _v4_common(c, rope_theta=True):
    """dtype -> torch_dtype, drop layer_types, flat rope_parameters -> rope_theta (+ rope_scaling)."""
    c = dict(c)
    c["torch_dtype"] = c.pop("dtype")
    c.pop("layer_types", None)
    c["transformers_version"] = "4.51.3"
    rp = dict(c.pop("rope_parameters"))
    if rope_theta:
        c["rope_theta"] = rp.pop("rope_theta")
    rp.pop("partial_rotary_factor", None)
    return c, rp


def v4_llama(c):
    c, rp = _v4_common(c)
    # Llama 3.1 form: rope_scaling with "rope_type"
    c["rope_scaling"] = {k: rp[k] for k in ("factor", "low_freq_factor", "high_freq_factor",
                                             "original_max_position_embeddings", "rope_type")}
    return c


def v4_qwen2_yarn(c):
    c, rp = _v4_common(c)
    c["rope_scaling"] = {"type": "yarn", "factor": rp["factor"],
                         "original_max_position_embeddings": rp["original_max_position_embeddings"]}
    return c


def v4_gemma3_text(c):
    c = dict(c)
    c["torch_dtype"] = c.pop("dtype")
    c.pop("layer_types")
    c["transformers_version"] = "4.51.3"
    rp = c.pop("rope_parameters")
    full, local = rp["full_attention"], rp["sliding_attention"]
    assert local["rope_type"] == "default"
    c["rope_theta"] = full["rope_theta"]
    c["rope_local_base_freq"] = local["rope_theta"]
    c["rope_scaling"] = {"rope_type": full["rope_type"], "factor": full["factor"]}
    c["sliding_window_pattern"] = c.pop("_sliding_window_pattern", c.get("sliding_window_pattern"))
    return c


def v4_phi3(c):
    c, rp = _v4_common(c)
    # top-level original_max_position_embeddings and partial_rotary_factor stay
    assert c["original_max_position_embeddings"] == rp["original_max_position_embeddings"]
    c["rope_scaling"] = {"type": "longrope", "short_factor": rp["short_factor"],
                         "long_factor": rp["long_factor"]}
    return c


def v4_gpt_neox(c):
    rp = c["rope_parameters"]
    assert rp["rope_type"] == "default"
    base, pct = rp["rope_theta"], rp["partial_rotary_factor"]
    c, _ = _v4_common(c, rope_theta=False)
    c["rotary_emb_base"] = base
    c["rotary_pct"] = pct
    return c


# ----------------------------------------------------------------------------------------------
# Cases. keys: type (model_type), seed, cfg (config kwargs over BASE), runs (token counts),
# features, form ("v5"/"v4"), v4 (rewrite function), swa (W, sliding layer indices) for the mask
# check, switch (True: runs must take different RoPE paths), expect ("match"/"refuse"),
# v4_keys (v4 config.json keys each of which must change the outputs when dropped), drop_keys
# (config.json keys removed), rename (model_type written), extra_tensor (added by hand).

SW = 8  # sliding window used by every windowed case

CASES = [
    dict(name="llama3", type="llama", seed=1001, runs=[40],
         cfg=dict(attention_bias=True, mlp_bias=True, tie_word_embeddings=False, head_dim=16,
                  rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=8.0,
                                       low_freq_factor=1.0, high_freq_factor=4.0,
                                       original_max_position_embeddings=32)),
         features=["llama3 rope scaling factor 8, L0 32 < T 40, low 1 / high 4: bands "
                   "k=0 unchanged, k=1 blended, k>=2 divided (head_dim 8)",
                   "attention_bias (q,k,v,o) and mlp_bias (gate,up,down)", "untied lm_head",
                   "GQA 2 q / 1 kv"]),
    dict(name="llama_tied", type="llama", seed=1002, runs=[24],
         cfg=dict(tie_word_embeddings=True, head_dim=16),
         features=["tie_word_embeddings true (no lm_head.weight on disk)", "GQA 2 q / 1 kv"]),
    dict(name="llama_v4", type="llama", seed=1003, runs=[40], form="v4", v4=v4_llama,
         v4_keys=["rope_scaling", "rope_theta"],
         cfg=dict(tie_word_embeddings=False, head_dim=16,
                  rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0,
                                       low_freq_factor=1.0, high_freq_factor=4.0,
                                       original_max_position_embeddings=32)),
         features=["v4 config.json: top-level rope_theta 5e5, rope_scaling {rope_type llama3, "
                   "factor 8, L0 32} (Llama 3.1 form), torch_dtype"]),
    dict(name="llama_dynamic", type="llama", seed=1004, runs=[12, 32], switch=True,
         cfg=dict(head_dim=16, max_position_embeddings=16,
                  rope_parameters=dict(rope_type="dynamic", rope_theta=10000.0, factor=2.0)),
         features=["dynamic NTK factor 2, max_position_embeddings 16: run 0 T=12 original "
                   "frequencies, run 1 T=32 grown base (fresh model per run)"]),
    dict(name="mistral_swa", type="mistral", seed=1101, runs=[24], swa=(SW, [0, 1]),
         cfg=dict(sliding_window=SW, num_attention_heads=4, num_key_value_heads=2, head_dim=12),
         features=["sliding_window 8 on all layers", "head_dim 12 != hidden/H 8", "GQA 4/2"]),
    dict(name="mistral_nokey", type="mistral", seed=1102, runs=[24], drop_keys=["sliding_window"],
         cfg=dict(head_dim=16),
         features=["config.json has no sliding_window key: HF default 4096 (no window inside T)"]),
    dict(name="mistral_null", type="mistral", seed=1103, runs=[24],
         cfg=dict(sliding_window=None, head_dim=16),
         features=["sliding_window null"]),
    dict(name="qwen2", type="qwen2", seed=1201, runs=[24], swa=(SW, [1]),
         cfg=dict(use_sliding_window=True, sliding_window=SW, max_window_layers=1),
         features=["random q/k/v biases (no o bias)", "use_sliding_window true, sliding_window 8, "
                   "max_window_layers 1: layer 0 full, layer 1 sliding"]),
    dict(name="qwen2_swa_off", type="qwen2", seed=1202, runs=[24], swa=(SW, []),
         drop_keys=["layer_types"],
         cfg=dict(use_sliding_window=False, sliding_window=SW, max_window_layers=0),
         features=["use_sliding_window false with sliding_window 8 and max_window_layers 0 set: "
                   "no window", "config.json has no layer_types (removed by hand, as in "
                   "v4-era files), so use_sliding_window decides"]),
    dict(name="qwen2_yarn_v4", type="qwen2", seed=1203, runs=[32], swa=(SW, [1]), form="v4",
         v4=v4_qwen2_yarn,
         v4_keys=["rope_scaling", "use_sliding_window", "max_window_layers"],
         cfg=dict(use_sliding_window=True, sliding_window=SW, max_window_layers=1,
                  rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                       original_max_position_embeddings=16)),
         features=["v4 config.json: rope_scaling {type yarn, factor 4, "
                   "original_max_position_embeddings 16} < T 32, attention_factor 0.1 ln 4 + 1",
                   "use_sliding_window true, sliding_window 8, max_window_layers 1 and no "
                   "layer_types: layer 0 full, layer 1 sliding"]),
    dict(name="qwen3", type="qwen3", seed=1301, runs=[24],
         cfg=dict(num_attention_heads=4, num_key_value_heads=2, head_dim=12, attention_bias=True),
         features=["head_dim 12 != hidden/H 8", "random per-head q_norm/k_norm [D]",
                   "attention_bias true (q,k,v,o)"]),
    dict(name="granite", type="granite", seed=1401, runs=[24],
         cfg=dict(head_dim=16, embedding_multiplier=3.0, attention_multiplier=0.7,
                  residual_multiplier=0.5, logits_scaling=2.5),
         features=["embedding_multiplier 3", "attention_multiplier 0.7 (D^-0.5 = 0.25)",
                   "residual_multiplier 0.5", "logits_scaling 2.5"]),
    dict(name="smollm3", type="smollm3", seed=1501, runs=[24],
         cfg=dict(num_hidden_layers=4, head_dim=16, rope_parameters=dict(rope_type="default",
                                                                         rope_theta=10000.0)),
         features=["4 layers: layer 3 NoPE (no_rope_layers [1,1,1,0])", "tied"]),
    dict(name="gemma", type="gemma", seed=1601, runs=[24],
         cfg=dict(num_attention_heads=4, num_key_value_heads=2, head_dim=12),
         features=["(1+w) float32 RMSNorm, random offsets", "embeddings x sqrt(32)",
                   "gelu_pytorch_tanh GeGLU", "head_dim 12 != hidden/H 8", "GQA 4/2", "tied"]),
    dict(name="gemma2", type="gemma2", seed=1701, runs=[24], swa=(SW, [0]),
         cfg=dict(head_dim=16, attn_logit_softcapping=2.0, final_logit_softcapping=3.0,
                  query_pre_attn_scalar=24, sliding_window=SW),
         features=["attn softcap 2.0", "final softcap 3.0", "query_pre_attn_scalar 24 != D 16",
                   "sliding_window 8 on layer 0, layer 1 full", "sandwich (1+w) norms"]),
    dict(name="gemma3_text", type="gemma3_text", seed=1801, runs=[24], swa=(SW, [0, 2]),
         cfg=dict(num_hidden_layers=3, head_dim=16, query_pre_attn_scalar=24, sliding_window=SW,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                  final_logit_softcapping=3.0, attn_logit_softcapping=2.0,
                  rope_parameters={"sliding_attention": dict(rope_type="default", rope_theta=1000.0),
                                   "full_attention": dict(rope_type="linear", factor=4.0,
                                                          rope_theta=50000.0)}),
         features=["layer_types [sliding, full, sliding], sliding_window 8",
                   "local rope_theta 1000 on sliding layers; rope_theta 50000 + linear factor 4 "
                   "on the full layer", "final softcap 3.0", "attn_logit_softcapping 2.0 set "
                   "(ignored by HF)", "random (1+w) q_norm/k_norm", "query_pre_attn_scalar 24",
                   "config.json also holds _sliding_window_pattern 6 (written by v5, stale: "
                   "layer_types wins)"]),
    dict(name="gemma3_text_v4", type="gemma3_text", seed=1802, runs=[24], swa=(SW, [0]),
         form="v4", v4=v4_gemma3_text,
         v4_keys=["rope_theta", "rope_local_base_freq", "rope_scaling", "sliding_window_pattern"],
         cfg=dict(num_hidden_layers=2, head_dim=16, query_pre_attn_scalar=16, sliding_window=SW,
                  sliding_window_pattern=2, final_logit_softcapping=None,
                  rope_local_base_freq=1000.0, rope_theta=50000.0,
                  rope_scaling={"rope_type": "linear", "factor": 4.0}),
         features=["v4 config.json: rope_theta 50000, rope_local_base_freq 1000, rope_scaling "
                   "{rope_type linear, factor 4}, sliding_window_pattern 2 (layer 0 sliding, "
                   "layer 1 full), no layer_types", "sliding_window 8"]),
    dict(name="gemma3_mm", type="gemma3", seed=1803, runs=[24], swa=(SW, [0]), multimodal=True,
         cfg=dict(text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=12,
                                   num_hidden_layers=2, num_attention_heads=2,
                                   num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                                   sliding_window=SW,
                                   layer_types=["sliding_attention", "full_attention"],
                                   max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                                   eos_token_id=2,
                                   rope_parameters={
                                       "sliding_attention": dict(rope_type="default",
                                                                 rope_theta=1000.0),
                                       "full_attention": dict(rope_type="linear", factor=2.0,
                                                              rope_theta=20000.0)}),
                  vision_config=dict(hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                                     num_attention_heads=1, image_size=8, patch_size=4),
                  mm_tokens_per_image=4, boi_token_index=61, eoi_token_index=62,
                  image_token_index=64, pad_token_id=0, bos_token_id=1, eos_token_id=2),
         features=["multimodal model_type gemma3 (Gemma3ForConditionalGeneration), nested "
                   "text_config, keys language_model.model.* plus a tiny vision_tower.* and "
                   "multi_modal_projector.*, tied", "text part: layer 0 sliding 8, layer 1 full "
                   "with linear factor 2", "expected = text-only forward"]),
    dict(name="phi3", type="phi3", seed=1901, runs=[12, 40], switch=True,
         cfg=dict(head_dim=16, partial_rotary_factor=0.75, original_max_position_embeddings=16,
                  max_position_embeddings=64, rope_parameters=phi3_longrope()),
         features=["fused qkv_proj / gate_up_proj", "partial_rotary_factor 0.75, D 16 -> r 12",
                   "longrope short/long factor lists, original_max_position_embeddings 16, "
                   "max_position_embeddings 64 (attention_factor sqrt(1+ln4/ln16))",
                   "run 0 T=12 short path, run 1 T=40 long path"]),
    dict(name="phi3_swa", type="phi3", seed=1902, runs=[24], swa=(SW, [0, 1]),
         cfg=dict(head_dim=16, sliding_window=SW),
         features=["sliding_window 8 on all layers", "full rotary, default rope"]),
    dict(name="phi3_v4", type="phi3", seed=1903, runs=[12, 40], switch=True, form="v4",
         v4=v4_phi3,
         v4_keys=["rope_scaling", "partial_rotary_factor", "original_max_position_embeddings"],
         cfg=dict(head_dim=16, partial_rotary_factor=0.75, original_max_position_embeddings=16,
                  max_position_embeddings=64, rope_parameters=phi3_longrope()),
         features=["v4 config.json: rope_scaling {type longrope, short_factor, long_factor}, "
                   "top-level rope_theta, original_max_position_embeddings 16, "
                   "partial_rotary_factor 0.75", "runs T=12 (short) and T=40 (long)"]),
    dict(name="olmo2", type="olmo2", seed=2001, runs=[24],
         cfg=dict(num_attention_heads=4, num_key_value_heads=2),
         features=["post-norm only", "random full-width q_norm [H*D] / k_norm [KV*D]",
                   "GQA 4/2, D 8"]),
    dict(name="olmo3", type="olmo3", seed=2101, runs=[24], swa=(SW, [0, 1, 2]),
         cfg=dict(num_hidden_layers=4, head_dim=16, sliding_window=SW,
                  rope_parameters={"sliding_attention": dict(rope_type="default", rope_theta=10000.0),
                                   "full_attention": dict(rope_type="yarn", rope_theta=50000.0,
                                                          factor=4.0,
                                                          original_max_position_embeddings=16)}),
         features=["layer_types 3 sliding : 1 full, sliding_window 8",
                   "nested rope_parameters: sliding default theta 1e4, full yarn factor 4 "
                   "(L0 16) theta 5e4", "post-norm, full-width qk-norm"]),
    dict(name="gpt_neox_parallel", type="gpt_neox", seed=2201, runs=[24],
         cfg=dict(num_attention_heads=2, use_parallel_residual=True, hidden_act="gelu",
                  rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                       partial_rotary_factor=0.25)),
         features=["use_parallel_residual true (two norms on the same x)", "D 16, partial 0.25 "
                   "-> r 4", "gelu (erf)", "random biases everywhere", "untied embed_out"]),
    dict(name="gpt_neox_sequential", type="gpt_neox", seed=2202, runs=[24],
         cfg=dict(num_attention_heads=2, use_parallel_residual=False, hidden_act="gelu",
                  rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                       partial_rotary_factor=0.25)),
         features=["use_parallel_residual false", "D 16, partial 0.25", "gelu (erf)"]),
    dict(name="gpt_neox_v4", type="gpt_neox", seed=2203, runs=[24], form="v4", v4=v4_gpt_neox,
         v4_keys=["rotary_pct", "rotary_emb_base"],
         cfg=dict(num_attention_heads=2, use_parallel_residual=True, hidden_act="gelu",
                  rope_parameters=dict(rope_type="default", rope_theta=5000.0,
                                       partial_rotary_factor=0.5)),
         features=["v4 config.json: rotary_pct 0.5, rotary_emb_base 5000 (r 8 of D 16)"]),
    dict(name="stablelm", type="stablelm", seed=2301, runs=[24],
         cfg=dict(qk_layernorm=True, use_qkv_bias=True, use_parallel_residual=False,
                  num_attention_heads=2, num_key_value_heads=1,
                  rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                       partial_rotary_factor=0.25)),
         features=["qk_layernorm (per-head LayerNorm, no bias)", "use_qkv_bias",
                   "use_parallel_residual false", "partial 0.25 (r 4 of D 16)", "GQA 2/1"]),
    dict(name="stablelm_parallel", type="stablelm", seed=2302, runs=[24],
         cfg=dict(qk_layernorm=False, use_qkv_bias=True, use_parallel_residual=True,
                  num_attention_heads=2, num_key_value_heads=2,
                  rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                       partial_rotary_factor=0.5)),
         features=["use_parallel_residual true (one norm)", "use_qkv_bias", "partial 0.5"]),
    dict(name="starcoder2", type="starcoder2", seed=2401, runs=[24], swa=(SW, [0, 1]),
         cfg=dict(use_bias=True, sliding_window=SW, norm_epsilon=1e-2,
                  num_attention_heads=2, num_key_value_heads=1),
         features=["use_bias (q,k,v,o, c_fc, c_proj)", "sliding_window 8 all layers",
                   "norm_epsilon 1e-2", "tied"]),
    dict(name="cohere", type="cohere", seed=2501, runs=[24],
         cfg=dict(use_qk_norm=True, logit_scale=0.5, num_attention_heads=2,
                  num_key_value_heads=1),
         features=["interleaved RoPE", "use_qk_norm (q_norm [H,D], k_norm [KV,D])",
                   "logit_scale 0.5", "parallel block, one bias-free LayerNorm", "tied"]),
    dict(name="cohere2", type="cohere2", seed=2601, runs=[24], swa=(SW, [0, 1, 2]),
         cfg=dict(num_hidden_layers=4, sliding_window=SW, logit_scale=0.5),
         features=["layer_types 3 sliding : 1 full, sliding_window 8",
                   "full layer 3 is NoPE", "interleaved RoPE on sliding layers", "logit_scale 0.5"]),
    dict(name="glm", type="glm", seed=2701, runs=[24],
         cfg=dict(head_dim=16, num_attention_heads=2, num_key_value_heads=1),
         features=["interleaved RoPE inside partial 0.5 (r 8 of D 16)", "random q/k/v biases",
                   "fused gate_up_proj"]),
    dict(name="glm4", type="glm4", seed=2801, runs=[24],
         cfg=dict(head_dim=16, num_attention_heads=2, num_key_value_heads=1),
         features=["sandwich norms (post_self_attn / post_mlp layernorms)",
                   "interleaved partial 0.5", "random q/k/v biases"]),
    # ---- checkpoints the C++ side must refuse
    dict(name="refuse_qwen3_moe", type="qwen3_moe", seed=2901, runs=[], expect="refuse",
         refuse_reason="MoE (qwen3_moe) is not supported",
         cfg=dict(num_hidden_layers=1, head_dim=16, num_experts=4, num_experts_per_tok=2,
                  moe_intermediate_size=8,
                  decoder_sparse_step=1, norm_topk_prob=True),
         features=["qwen3_moe, 4 experts top-2"]),
    dict(name="refuse_phi", type="phi", seed=3001, runs=[], expect="refuse",
         refuse_reason="phi (Phi-1/1.5/2) is not supported",
         cfg=dict(num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2),
         features=["phi (Phi-2 style): parallel block, lm_head bias, partial 0.5"]),
    dict(name="refuse_frobnicate", type="llama", seed=3101, runs=[], expect="refuse",
         refuse_reason="unknown model_type 'frobnicate' (architectures still LlamaForCausalLM)",
         rename="frobnicate", cfg=dict(num_hidden_layers=1, head_dim=16),
         features=["a llama checkpoint whose config.json says model_type frobnicate"]),
    dict(name="refuse_mistral_extra_tensor", type="mistral", seed=3201, runs=[], expect="refuse",
         refuse_reason="unexpected tensor model.layers.0.self_attn.extra_proj.weight",
         extra_tensor=("model.layers.0.self_attn.extra_proj.weight", (4, 32)),
         cfg=dict(num_hidden_layers=1, head_dim=16, sliding_window=SW),
         features=["mistral with one extra unexpected tensor added by hand"]),
]


# ----------------------------------------------------------------------------------------------

def fail(msg):
    print("SELF-CHECK FAILED: " + msg, file=sys.stderr)
    sys.exit(1)


def build_config(case):
    kw = dict(BASE) if not case.get("multimodal") else {}
    kw.update(case["cfg"])
    return AutoConfig.for_model(case["type"], **kw)


def build_model(cfg):
    kw = dict(dtype=torch.float64, attn_implementation="eager")
    if cfg.model_type == "qwen3_moe":
        kw["experts_implementation"] = "eager"
    return AutoModelForCausalLM.from_config(cfg, **kw).eval()


def randomise(model, seed):
    """Redraw every parameter (see the module docstring), then round to float32."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            const = bool((flat == flat[0]).all()) if flat.numel() > 1 else True
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if const:
                new = flat[0].item() + VECTOR_STD * noise
            else:
                new = MATRIX_STD * noise
            p.copy_(new.to(torch.float32).to(p.dtype))


def save_float32(model, out_dir):
    m32 = copy.deepcopy(model).to(torch.float32)
    m32.config.dtype = torch.float32
    for sub in ("text_config", "vision_config"):
        if hasattr(m32.config, sub):
            getattr(m32.config, sub).dtype = torch.float32
    m32.save_pretrained(out_dir)
    gen = os.path.join(out_dir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)
    assert sorted(os.listdir(out_dir)) == ["config.json", "model.safetensors"], os.listdir(out_dir)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def forward(model, ids):
    with torch.no_grad():
        out = model(torch.tensor(ids, dtype=torch.long)[None], output_attentions=True,
                    use_cache=False)
    logits = out.logits[0].to(torch.float64).numpy()
    probs = [a[0].numpy() for a in out.attentions]
    return logits, probs


def check_windows(name, probs, T, swa):
    W, sliding = swa
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    dist = i - j
    for l, p in enumerate(probs):
        if l in sliding:
            if (p[:, dist >= W] != 0).any():
                fail(f"{name} layer {l}: nonzero probability at distance >= {W}")
            if not (p[:, dist == W - 1] != 0).any():
                fail(f"{name} layer {l}: all-zero probabilities at distance {W - 1}")
        elif not (p[:, dist >= W] != 0).any():
            fail(f"{name} layer {l}: full-attention layer has no weight at distance >= {W}")


def gemma3_text_reference(model):
    """Gemma3ForCausalLM with the multimodal model's text_config and language_model weights."""
    from transformers import Gemma3ForCausalLM
    tcfg = copy.deepcopy(model.config.text_config)
    text = Gemma3ForCausalLM._from_config(tcfg, dtype=torch.float64,
                                          attn_implementation="eager").eval()
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("model.language_model."):
            sd["model." + k[len("model.language_model."):]] = v
    sd["lm_head.weight"] = model.state_dict()["lm_head.weight"]
    missing, unexpected = text.load_state_dict(sd, strict=False)
    if missing or unexpected:
        fail(f"gemma3 text transfer: missing {missing} unexpected {unexpected}")
    return text


def check_v4_keys(case, d, ids, logits):
    """Each v4 key matters: dropping it from config.json changes the reloaded model's logits."""
    import tempfile
    config = json.load(open(os.path.join(d, "config.json")))
    for key in case["v4_keys"]:
        with tempfile.TemporaryDirectory() as tmp:
            write_json(os.path.join(tmp, "config.json"), {k: v for k, v in config.items() if k != key})
            shutil.copy(os.path.join(d, "model.safetensors"), tmp)
            try:
                m = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float64,
                                                         attn_implementation="eager").eval()
            except Exception:  # e.g. longrope factor lists no longer fit the rotary dim
                continue
            ml, _ = forward(m, ids)
        if np.abs(ml - logits).max() < 1e-6:
            fail(f"{case['name']}: dropping v4 key {key} does not change the model")


def make_case(case, out_root):
    name = case["name"]
    d = os.path.join(out_root, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    torch.manual_seed(case["seed"])
    cfg = build_config(case)
    model = build_model(cfg)
    randomise(model, case["seed"])
    save_float32(model, d)
    cpath = os.path.join(d, "config.json")
    config = json.load(open(cpath))
    form = case.get("form", "v5")

    if case.get("rename"):
        config["model_type"] = case["rename"]
    for k in case.get("drop_keys", []):
        del config[k]
    if form == "v4":
        config = case["v4"](config)
        for k in ("rope_parameters", "layer_types", "dtype"):
            assert k not in config, (name, k)
    write_json(cpath, config)
    if case.get("extra_tensor"):
        key, shape = case["extra_tensor"]
        spath = os.path.join(d, "model.safetensors")
        tensors = safetensors.torch.load_file(spath)
        g = torch.Generator().manual_seed(case["seed"] + 1)
        tensors[key] = (MATRIX_STD * torch.randn(shape, generator=g, dtype=torch.float64)).float()
        safetensors.torch.save_file(tensors, spath, metadata={"format": "pt"})

    info = dict(family=config.get("model_type"), architectures=config.get("architectures"),
                config_form=form, runs=case["runs"], features=case["features"],
                expect=case.get("expect", "match"))
    if info["expect"] == "refuse":
        info["refuse_reason"] = case["refuse_reason"]
    info["transformers"] = transformers.__version__
    info["torch"] = torch.__version__
    write_json(os.path.join(d, "case.json"), info)
    if info["expect"] == "refuse":
        return

    # reference runs: each on a fresh copy of the pristine model
    rng = np.random.default_rng(case["seed"])
    vocab = cfg.get_text_config().vocab_size
    all_ids = rng.integers(0, vocab, size=max(case["runs"])).astype(np.int32)
    text_ref = gemma3_text_reference(model) if case.get("multimodal") else None
    reloaded = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float64,
                                                    attn_implementation="eager").eval()
    tensors = {}
    results = []
    for r, T in enumerate(case["runs"]):
        ids = all_ids[:T]
        logits, probs = forward(copy.deepcopy(model), ids)
        if text_ref is not None:
            tl, tp = forward(copy.deepcopy(text_ref), ids)
            if not (np.array_equal(tl, logits) and all(np.array_equal(a, b)
                                                       for a, b in zip(tp, probs))):
                fail(f"{name}: multimodal text part differs from Gemma3ForCausalLM "
                     f"(max {np.abs(tl - logits).max():.3g})")
            logits, probs = tl, tp
        rl, rp = forward(copy.deepcopy(reloaded), ids)
        if not np.array_equal(rl, logits) or not all(np.array_equal(a, b)
                                                     for a, b in zip(rp, probs)):
            fail(f"{name} run {r}: reloading {d} does not reproduce the outputs "
                 f"(max logit diff {np.abs(rl - logits).max():.3g})")
        if not np.isfinite(logits).all():
            fail(f"{name}: non-finite logits")
        n_layers = len(probs)
        # no "swa": every layer must be full attention (weight beyond T/2 somewhere)
        check_windows(name, probs, T, case.get("swa") or (T // 2, []))
        tensors[f"tokens.{r}"] = ids.astype(np.int32)
        tensors[f"logits.{r}"] = logits.astype(np.float64)
        for l, p in enumerate(probs):
            assert np.array_equal(p.astype(np.float32).astype(p.dtype), p), "probs not float32"
            tensors[f"probs.{r}.{l}"] = p.astype(np.float32)
        results.append((T, logits))
        if form == "v4":
            check_v4_keys(case, d, ids, logits)
    if case.get("switch"):
        (T0, l0), (_, l1) = results[0], results[1]
        if np.abs(l0 - l1[:T0]).max() < 1e-6:
            fail(f"{name}: runs T={T0} and T={results[1][0]} took the same RoPE path")
    safetensors.numpy.save_file(tensors, os.path.join(d, "expected.safetensors"))
    print(f"{name}: layers {n_layers}, runs {case['runs']}, logit std "
          f"{np.std(results[-1][1]):.2f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    os.makedirs(args.out, exist_ok=True)
    names = [c["name"] for c in CASES]
    assert len(set(names)) == len(names)
    for case in CASES:
        if args.only and case["name"] not in args.only:
            continue
        make_case(case, args.out)
    if not args.only:
        write_json(os.path.join(args.out, "index.json"), names)


if __name__ == "__main__":
    main()
