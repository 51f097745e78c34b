#!/usr/bin/env python3
"""Optional cross-check of the committed fixtures against Hugging Face transformers
(not needed to build or test ropescope; needs `pip install transformers`).

Every RoPE++ checkpoint is rewritten as an equivalent vanilla Llama checkpoint:
attention head 2j+1 (imaginary) becomes an ordinary RoPE head whose q_proj rows
are the query rotated by -pi/2 in every rotary pair, (a, b) -> (b, -a), i.e.
rows n <- rows n + r/2 and rows n + r/2 <- -rows n; the real head keeps the
rows; KV heads and o_proj are unchanged (the interleaved order is HF's own
head order, and GQA grouping h // (A/KV) is the same). Head ablation becomes
zeroed o_proj columns. The converted model then runs through
transformers' LlamaForCausalLM (float64 weights, eager attention) and its
logits, hidden states and attention probabilities are compared with each
fixture. Frequencies are also compared with transformers' ROPE_INIT_FUNCTIONS.
Partial rotary is checked for frequencies only (HF Llama's apply_rotary_pos_emb
has no partial rotary). HF computes angles in float32, hence the tolerances.
"""

import json
import os
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import torch_reference as ref  # noqa: E402


def to_vanilla(model: ref.Reference, ablate, out_dir):
    cfg, d, r = model.cfg, model.cfg.head_dim, model.cfg.rotary_dim
    h = r // 2
    w = {k: v.clone() for k, v in model.w.items()}
    for l in range(cfg.num_hidden_layers):
        p = f"model.layers.{l}.self_attn."
        if model.variant != "rope":
            for suffix in ("weight", "bias"):
                name = p + "q_proj." + suffix
                if name not in w:
                    continue
                q = w[name].view(model.Q, d, *w[name].shape[1:])
                im = q.clone()
                im[:, :h], im[:, h:r] = q[:, h:r], -q[:, :h]
                w[name] = torch.stack([q, im], 1).reshape(model.A * d, *w[name].shape[1:])
        for a in model._ablated_heads(ablate, l):
            w[p + "o_proj.weight"][:, a * d:(a + 1) * d] = 0
    if "lm_head.weight" not in w and not cfg.tie_word_embeddings:
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
    with open(os.path.join(model.dir, "config.json")) as f:
        c = json.load(f)
    c.pop("rope_config", None)
    c["num_attention_heads"], c["num_key_value_heads"] = model.A, model.KV
    c["torch_dtype"] = "float64"
    c.pop("dtype", None)
    if cfg.scaling.type == "yarn_ropepp":
        raise NotImplementedError
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(c, f)
    save_file({k: v.contiguous() for k, v in w.items()}, os.path.join(out_dir, "model.safetensors"))


def main():
    import transformers
    from transformers import AutoConfig, LlamaForCausalLM
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    torch.set_num_threads(2)
    fixtures = os.path.join(ROOT, "tests", "data", "fixtures")
    with open(os.path.join(fixtures, "index.json")) as f:
        index = json.load(f)
    worst = {}
    for case in index:
        mdir = os.path.join(ROOT, case["model_dir"])
        model = ref.Reference(mdir)
        model.dir = mdir
        fx = load_file(os.path.join(fixtures, case["case"] + ".safetensors"))
        T = case["tokens_shape"][1]
        # frequencies
        theta, mag = ref.rope_frequencies(model.cfg, T)
        partial = model.cfg.rotary_dim != model.cfg.head_dim  # HF Llama's rotary ignores partial_rotary_factor
        if model.cfg.scaling.type != "yarn_ropepp" and not partial:
            hc = AutoConfig.from_pretrained(mdir)
            rot = LlamaRotaryEmbedding(config=hc)
            inv, att = rot.inv_freq, rot.attention_scaling
            if model.cfg.scaling.type == "dynamic":
                inv, att = ROPE_INIT_FUNCTIONS["dynamic"](hc, "cpu", T)
            err = ((inv.double() - theta).abs() / theta).max().item()
            assert err < 2e-6 and abs(att - mag) < 1e-6, (case["case"], err, att, mag)
        if model.cfg.scaling.type == "yarn_ropepp" or partial:
            print(f"{case['case']:26s} skipped (HF Llama has no RoPE++ YaRN / partial rotary)")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            to_vanilla(model, case["ablate"], tmp)
            hf = LlamaForCausalLM.from_pretrained(tmp, dtype=torch.float64, attn_implementation="eager").eval()
            tok = torch.from_numpy(fx["tokens"].astype(np.int64))
            with torch.no_grad():
                out = hf(tok, output_hidden_states=True, output_attentions=True)
        e_log = (out.logits - torch.from_numpy(fx["logits"]).double()).abs().max().item()
        L = model.cfg.num_hidden_layers
        e_hid = max((out.hidden_states[l + 1] - torch.from_numpy(fx[f"hidden.{l}"]).double()).abs().max().item()
                    for l in range(L - 1)) if L > 1 else 0.0
        e_pr = 0.0
        for name in fx:
            if name.startswith("probs."):
                _, l, a = name.split(".")
                e_pr = max(e_pr, (out.attentions[int(l)][:, int(a)] - torch.from_numpy(fx[name]).double())
                           .abs().max().item())
        print(f"{case['case']:26s} max|d| logits {e_log:.2e} hidden {e_hid:.2e} probs {e_pr:.2e}")
        assert e_log < 2e-4 and e_hid < 2e-4 and e_pr < 1e-5, case["case"]
    print(f"all fixtures agree with transformers {transformers.__version__}")


if __name__ == "__main__":
    main()
