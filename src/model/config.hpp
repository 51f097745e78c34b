// ModelConfig: everything ropescope needs from a Hugging Face config.json, in
// one flat struct: sizes, the RoPE table(s), the RoPE++ variant, and the
// family's Architecture (model/architecture.hpp). Every family of
// ARCHITECTURES.md is parsed by its own rules (defaults, key names, v4
// rope_scaling and v5 rope_parameters, nested per layer type); an unknown
// model_type, an unsupported value of a key that changes the numbers, or a
// feature not modelled exactly is a FormatError naming the key.
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
#include <string_view>
#include <vector>

#include "io/dtype.hpp"
#include "model/architecture.hpp"
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

// The model_type values parse_model_config accepts, in the order of the docs.
const std::vector<std::string>& supported_families();

struct ModelConfig {
  std::string model_type = "llama";  // config.json's (for a Gemma 3 multimodal file: "gemma3", its text part is arch.family)
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;      // H, as config.json states it (see above)
  int num_key_value_heads = 0;      // KV, as config.json states it (default H)
  int head_dim = 0;                 // d (default hidden_size / H)
  int max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  io::Dtype dtype = io::Dtype::F32;  // torch_dtype / dtype; when config.json has none, the weights' dtype
  bool dtype_in_config = false;
  theory::RopeSpec rope;             // the main (full-attention) table: head_dim, rope_theta, partial rotary, scaling
  Architecture arch;                 // norms, block, MLP, attention extras, windows, RoPE per layer
  std::string tensor_prefix;         // "" or, for a Gemma 3 multimodal checkpoint, "language_model."
  std::vector<std::string> ignored_tensor_prefixes;  // parts of a multimodal checkpoint a text analysis never reads
  Variant variant = Variant::rope;   // resolved by load_model (rope_config, override, shapes)
  std::optional<Variant> rope_config_variant;  // what config.json's rope_config says, if it has one
};

// Parses a config.json object. `source` names it in messages (FormatError
// "<source>: <field>: ..."). Keys that neither the family's description reads
// nor the list of keys known not to change the numbers (token ids, dropout,
// generation settings) are appended to `warnings`.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& source,
                               std::vector<std::string>* warnings = nullptr);
// Parses config.json's text: strict JSON (io::parse_json_strict: no duplicate
// keys, no byte-order mark), then parse_model_config. Malformed text is a
// FormatError naming `source`.
ModelConfig parse_model_config_text(std::string_view text, const std::string& source,
                                    std::vector<std::string>* warnings = nullptr);
// Reads and parses `path` (config.json); a path that is not a regular file (a
// FIFO, a directory) is refused before it is opened for reading.
ModelConfig load_model_config(const std::filesystem::path& path, std::vector<std::string>* warnings = nullptr);

}  // namespace ropescope::model
