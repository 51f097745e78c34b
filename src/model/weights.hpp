// A loaded model: config, head layout, and flat per-layer views of the
// weights (llama2.c style), each checked for presence, dtype and shape at load.
// Views point into the memory-mapped safetensors files (nothing is copied) and
// keep their file mapped while they live.
//
// Tensor names and shapes are HF Llama's ([out, in]; Q, KV, A from HeadLayout,
// h = hidden_size, I = intermediate_size, V = vocab_size, d = head_dim):
//   model.embed_tokens.weight [V, h]          model.norm.weight [h]
//   lm_head.weight [V, h] (absent when tie_word_embeddings)
//   model.layers.{i}.input_layernorm.weight [h]
//   model.layers.{i}.self_attn.{q,k,v}_proj.weight [Q*d | KV*d | KV*d, h]  (+ .bias if attention_bias)
//   model.layers.{i}.self_attn.o_proj.weight [h, A*d]                     (+ .bias [h])
//   model.layers.{i}.post_attention_layernorm.weight [h]
//   model.layers.{i}.mlp.{gate,up}_proj.weight [I, h], mlp.down_proj.weight [h, I]  (+ .bias if mlp_bias)
// Old rotary_emb.inv_freq buffers are ignored; any other extra tensor is a warning.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.hpp"
#include "model/config.hpp"
#include "model/head_layout.hpp"

namespace ropescope::model {

struct LayerWeights {
  io::TensorView input_layernorm;                         // [h]
  io::TensorView q_proj, k_proj, v_proj;                  // [Q*d, h], [KV*d, h], [KV*d, h]
  io::TensorView o_proj;                                  // [h, A*d]
  std::optional<io::TensorView> q_bias, k_bias, v_bias;   // attention_bias: [Q*d], [KV*d], [KV*d]
  std::optional<io::TensorView> o_bias;                   // attention_bias: [h]
  io::TensorView post_attention_layernorm;                // [h]
  io::TensorView gate_proj, up_proj;                      // [I, h]
  io::TensorView down_proj;                               // [h, I]
  std::optional<io::TensorView> gate_bias, up_bias;       // mlp_bias: [I]
  std::optional<io::TensorView> down_bias;                // mlp_bias: [h]
};

struct Weights {
  io::TensorView embed_tokens;  // [V, h]
  std::vector<LayerWeights> layers;
  io::TensorView norm;          // [h]
  io::TensorView lm_head;       // [V, h]; the embed_tokens view when tied
};

struct ParameterCounts {
  std::uint64_t embedding = 0;  // embed_tokens
  std::uint64_t attention = 0;  // q, k, v, o (and biases), all layers
  std::uint64_t mlp = 0;        // gate, up, down (and biases), all layers
  std::uint64_t norm = 0;       // RMSNorm weights, all layers and the final one
  std::uint64_t lm_head = 0;    // 0 when tied
  std::uint64_t total() const { return embedding + attention + mlp + norm + lm_head; }
};

struct LoadOptions {
  std::optional<Variant> variant;  // forced variant (command line); must agree with config and shapes
};

struct Model {
  std::filesystem::path directory;
  ModelConfig config;                  // config.variant and config.dtype resolved
  HeadLayout layout;
  std::string variant_source;          // "rope_config", "override", "tensor shapes" or "default"
  std::shared_ptr<const io::Checkpoint> checkpoint;
  Weights weights;
  std::vector<std::string> warnings;   // extra tensors, odd config keys
};

// Loads `directory` (config.json + safetensors). Throws FormatError naming the
// file, tensor and expectation for anything missing or malformed, and for a
// variant contradiction between config.json, `options.variant` and the
// tensor shapes (ArgumentError when the override is the odd one out).
Model load_model(const std::filesystem::path& directory, const LoadOptions& options = {});

ParameterCounts count_parameters(const Model& model);

}  // namespace ropescope::model
