// A loaded model: config (with its Architecture), head layout, and flat
// per-layer views of the weights (llama2.c style), each checked for presence,
// dtype and shape at load. Views point into the memory-mapped safetensors
// files (nothing is copied) and keep their file mapped while they live.
//
// Every family names its tensors in one table (weights.cpp, `names_of`); the
// views below are the same for all of them ([out, in]; Q, KV, A from
// HeadLayout, h = hidden_size, I = intermediate_size, V = vocab_size, d = head_dim):
//   embed [V, h], lm_head [V, h] (the embed view when tied), final_norm [h]
//   per layer: norms [h] as the block kind places them, q [Q*d, h], k/v [KV*d, h],
//   o [h, A*d], optional biases, qk-norm weights, gate/up [I, h], down [h, I].
// Fused tensors (Phi-3 qkv_proj / gate_up_proj, GPT-NeoX's per-head
// query_key_value, GLM's gate_up_proj) become row selections of one tensor;
// an interleaved-rotary checkpoint (Cohere, GLM) gets its q/k rows permuted
// into the rotate_half order (ARCHITECTURES.md 1.6). Every tensor in the files
// must be consumed: anything else is a FormatError naming it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "io/checkpoint.hpp"
#include "model/config.hpp"
#include "model/head_layout.hpp"

namespace ropescope::model {

// A checked tensor, or chosen rows of one (a fused projection's part, or
// rows permuted), or a range of its columns (a tensor-parallel shard of a
// row-parallel layer, model/tensor_parallel.hpp). The tensor is viewed as
// [rows, row_elements]; a 1-D tensor (bias, norm weight) has rows of one element.
struct WeightView {
  io::TensorView tensor;
  std::vector<std::uint64_t> rows;  // empty: every row in order; else these rows, in this order
  std::uint64_t row_elements = 1;
  std::uint64_t first_column = 0;   // with columns > 0: each row's elements first_column .. first_column + columns - 1
  std::uint64_t columns = 0;        // 0: every element of each row

  bool gathered() const { return !rows.empty() || columns != 0; }  // not the tensor's bytes as they lie
  std::uint64_t row_count() const;
  std::uint64_t column_count() const { return columns != 0 ? columns : row_elements; }
  std::uint64_t numel() const { return row_count() * column_count(); }
  // The tensor's row that selected row i is.
  std::uint64_t source_row(std::uint64_t i) const { return rows.empty() ? i : rows[i]; }
  io::Dtype dtype() const { return tensor.dtype(); }
  // Shape as the model uses it: [row_count, column_count], or [row_count] for a 1-D tensor.
  std::vector<std::uint64_t> shape() const;
  // The selected rows and columns converted to float, row-major (out.size() == numel()).
  void to_float(std::span<float> out) const;
  std::vector<float> to_float() const;
};

struct NormWeights {
  WeightView weight;
  std::optional<WeightView> bias;  // LayerNorm with bias
};

struct LayerWeights {
  std::optional<NormWeights> attn_norm;       // before attention (absent for post-norm blocks)
  std::optional<NormWeights> post_attn_norm;  // on the attention output (sandwich, post-norm)
  std::optional<NormWeights> mlp_norm;        // before the MLP (absent for parallel_shared_norm and post-norm)
  std::optional<NormWeights> post_mlp_norm;   // on the MLP output (sandwich, post-norm)
  WeightView q_proj, k_proj, v_proj;          // [Q*d, h], [KV*d, h], [KV*d, h]
  WeightView o_proj;                          // [h, A*d]
  std::optional<WeightView> q_bias, k_bias, v_bias;  // [Q*d], [KV*d], [KV*d]
  std::optional<WeightView> o_bias;                  // [h]
  // qk-norm weights, concatenated in this order: [d] (one shared by every head), [Q*d] / [KV*d] (per-head
  // weights, full width); StableLM stores one [d] tensor per head, so these are lists of views.
  std::vector<WeightView> q_norm, k_norm;
  std::optional<WeightView> gate_proj;        // [I, h]; absent for a plain (non-gated) MLP
  WeightView up_proj;                         // [I, h] (a plain MLP's input projection)
  WeightView down_proj;                       // [h, I]
  std::optional<WeightView> gate_bias, up_bias, down_bias;  // [I], [I], [h]
};

struct Weights {
  WeightView embed_tokens;  // [V, h]
  std::vector<LayerWeights> layers;
  NormWeights norm;         // final norm [h]
  WeightView lm_head;       // [V, h]; the embed_tokens view when tied
};

struct ParameterCounts {
  std::uint64_t embedding = 0;  // embed_tokens
  std::uint64_t attention = 0;  // q, k, v, o, their biases and qk-norms, all layers
  std::uint64_t mlp = 0;        // gate, up, down (and biases), all layers
  std::uint64_t norm = 0;       // layer norm weights (and biases), all layers and the final one
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
  ParameterCounts parameters;          // counted from the tensors consumed (a fused tensor once)
  std::vector<std::string> warnings;   // config keys nothing reads, parts of a checkpoint not used
};

// Loads `directory` (config.json + safetensors). Throws FormatError naming the
// file, tensor and expectation for anything missing, malformed or left over,
// for a NaN or infinite value in any tensor the model consumes (the first
// one's element index), and for a variant contradiction between config.json, `options.variant` and
// the tensor shapes (ArgumentError when the override is the odd one out, or
// when it asks for RoPE++ on a family that has no RoPE++ checkpoints).
Model load_model(const std::filesystem::path& directory, const LoadOptions& options = {});

ParameterCounts count_parameters(const Model& model);

}  // namespace ropescope::model
