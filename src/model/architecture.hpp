// Architecture: how a checkpoint computes, as data. One description that the
// weight loader, both backends, every analysis and `info` read, so a family's
// quirks (norm placement, qk-norm, softcaps, sliding windows, NoPE layers,
// multipliers) are stated once and never re-derived.
//
// The families and their differences from Llama are those of
// ../shared/reference/ARCHITECTURES.md (transformers 5.24, checked by running
// it); model/config.cpp turns each family's config.json into this struct and
// model/weights.cpp names each family's tensors. A decoder layer is
//
//   pre_norm             x += r * attn(n_a(x));              x += r * mlp(n_m(x))
//   sandwich             x += r * n_pa(attn(n_a(x)));        x += r * n_pm(mlp(n_m(x)))
//   post_norm            x += n_pa(attn(x));                 x += n_pm(mlp(x))
//   parallel_shared_norm h = n_a(x);  x += attn(h) + mlp(h)
//   parallel_two_norms   x += attn(n_a(x)) + mlp(n_m(x))
//
// with r the residual multiplier (Granite; 1 elsewhere). backend/decoder.hpp
// is the one implementation of this table.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "theory/rope_frequencies.hpp"

namespace ropescope::model {

enum class NormKind {
  rms,         // x / sqrt(mean(x^2) + eps) * w                 (Llama, Qwen, Mistral, Phi-3, OLMo 2, GLM)
  rms_offset,  // x / sqrt(mean(x^2) + eps) * (1 + w)           (Gemma: the stored weight is the offset)
  layer_norm,  // (x - mean) / sqrt(var + eps) * w (+ b)        (GPT-NeoX, StableLM, StarCoder2; Cohere without b)
};
const char* to_string(NormKind kind);

struct NormSpec {
  NormKind kind = NormKind::rms;
  double eps = 1e-6;
  bool bias = false;  // layer_norm only
};

enum class BlockKind { pre_norm, sandwich, post_norm, parallel_shared_norm, parallel_two_norms };
const char* to_string(BlockKind kind);

enum class Activation {
  silu,       // x sigmoid(x)
  gelu_erf,   // x Phi(x), exact (PyTorch nn.GELU())
  gelu_tanh,  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (gelu_pytorch_tanh, gelu_new)
};
const char* to_string(Activation act);

struct MlpSpec {
  bool gated = true;   // gated: down(act(gate x) * up x); plain: down(act(up x))
  Activation act = Activation::silu;
  bool bias = false;   // on every MLP projection
};

enum class QkNormKind {
  none,
  per_head,          // one weight [D] shared by every head, over each head's D dims (Qwen3, Gemma 3)
  per_head_weights,  // a weight per head, [H, D] / [KV, D], over each head's D dims (Cohere, StableLM)
  full_width,        // over the whole projection, weights [H*D] / [KV*D] (OLMo 2)
};
const char* to_string(QkNormKind kind);

struct AttentionSpec {
  double scale = 0;                  // multiplies q.k (head_dim^-0.5, query_pre_attn_scalar^-0.5 or Granite's multiplier)
  std::optional<double> softcap;     // scores -> cap * tanh(scores / cap), after the scale, before the mask
  QkNormKind qk_norm = QkNormKind::none;
  NormSpec qk_norm_spec;             // after the projection (and bias), before RoPE
  bool qkv_bias = false;             // bias on q, k and v
  bool o_bias = false;               // bias on o
};

// Which cos/sin table a layer rotates with.
enum class LayerRope {
  none,    // NoPE: q and k are not rotated
  global,  // ModelConfig::rope (the model's main table; RoPE overrides replace it)
  local,   // Architecture::local_rope (Gemma 3 / OLMo 3 sliding-window layers)
};

struct LayerSpec {
  long window = 0;  // sliding window W: key j visible to query i iff i - W < j <= i; 0 = full causal
  LayerRope rope = LayerRope::global;
};

struct Architecture {
  std::string family;  // the config's model_type, e.g. "qwen3", "gemma3_text", "gpt_neox"
  BlockKind block = BlockKind::pre_norm;
  NormSpec norm;       // every layer norm and the final norm
  MlpSpec mlp;
  AttentionSpec attention;
  std::vector<LayerSpec> layers;
  std::optional<theory::RopeSpec> local_rope;
  bool interleaved_rotary = false;   // the checkpoint rotates pairs (2k, 2k+1); q/k rows are permuted at load
                                     // into the rotate_half order (ARCHITECTURES.md 1.6), maps unchanged
  double embedding_multiplier = 1;   // embeddings times this (Gemma: sqrt(h); Granite: embedding_multiplier)
  bool embedding_multiplier_in_weight_dtype = false;  // Gemma: rounded to the weights' dtype at load, as HF does
  double residual_multiplier = 1;    // each branch output times this before the residual add (Granite)
  double logit_multiplier = 1;       // logits times this (Granite 1/logits_scaling, Cohere logit_scale)
  std::optional<double> final_softcap;  // logits -> cap * tanh(logits / cap)

  bool has_rope(int layer) const { return layers.at(layer).rope != LayerRope::none; }
  long window(int layer) const { return layers.at(layer).window; }
  bool any_window() const;
  bool any_nope() const;
  // One line per feature that differs from a plain Llama layer, for `info`, sidecars and refusals.
  std::vector<std::string> features() const;
};

// Every field, for `info --json` and run sidecars (per-layer windows and tables included).
nlohmann::json to_json(const Architecture& arch);

}  // namespace ropescope::model
