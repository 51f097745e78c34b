// ModelConfig: everything ropescope needs from a Hugging Face Llama
// config.json, in one flat struct, plus the RoPE++ variant.
//
// How config.json's head counts map to tensors (ROPEPP.md section 4; the
// reference code, OpenMOSS/rope_pp modeling_llama_rope_pp.py, does the same):
//   H  = num_attention_heads, KV = num_key_value_heads, d = head_dim, as written.
//   rope: query heads H,   KV heads KV,   attention heads H.
//   ec  : query heads H,   KV heads KV,   attention heads 2H ("imag2": projections
//         kept, every query head yields a real and an imaginary attention head).
//   eh  : query heads H/2, KV heads KV/2, attention heads H ("imag1": projections
//         halved, attention heads kept). H and KV must be even.
// model/head_layout.hpp turns this into per-head facts; use it, not these fields.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/dtype.hpp"
#include "theory/rope_frequencies.hpp"

namespace ropescope::model {

enum class Variant {
  rope,  // vanilla RoPE (real attention only)
  ec,    // RoPE++ equal cache ("imag2")
  eh,    // RoPE++ equal heads ("imag1")
};

std::string to_string(Variant variant);
// "rope", "ec", "eh" (also "imag2" -> ec, "imag1" -> eh). Throws ArgumentError otherwise.
Variant parse_variant(const std::string& name);

struct ModelConfig {
  std::string model_type = "llama";
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;      // H, as config.json states it (see above)
  int num_key_value_heads = 0;      // KV, as config.json states it (default H)
  int head_dim = 0;                 // d (default hidden_size / H)
  double rms_norm_eps = 1e-6;
  int max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  io::Dtype dtype = io::Dtype::F32;  // torch_dtype / dtype; when config.json has none, the weights' dtype
  bool dtype_in_config = false;
  theory::RopeSpec rope;             // head_dim, rope_theta, partial rotary, position scaling
  Variant variant = Variant::rope;   // resolved by load_model (rope_config, override, shapes)
  std::optional<Variant> rope_config_variant;  // what config.json's rope_config says, if it has one
};

// Parses a config.json object. `source` names it in messages (FormatError
// "<source>: <field>: ..."). Non-fatal oddities are appended to `warnings`.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& source,
                               std::vector<std::string>* warnings = nullptr);
// Reads and parses `path` (config.json).
ModelConfig load_model_config(const std::filesystem::path& path, std::vector<std::string>* warnings = nullptr);

}  // namespace ropescope::model
