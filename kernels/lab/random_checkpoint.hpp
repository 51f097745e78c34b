// A random bf16 HF Llama checkpoint (config.json + model.safetensors) of a
// chosen shape and RoPE variant, for the CUDA backend's validation at head
// dimensions the committed test models do not have (64, 128) and for its
// timing at the paper's model shapes. Weights: uniform with standard
// deviation `std` (embeddings `embed_std`, LM head embed_std / sqrt(hidden),
// norm weights 1), from a fixed-seed xorshift generator.
#pragma once

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/safetensors_writer.hpp"

namespace ropescope::kernels::lab {

struct RandomModelShape {
  std::string variant = "ec";  // rope, ec (imag2) or eh (imag1)
  int hidden = 1024, heads = 8, kv_heads = 4, head_dim = 128, intermediate = 3584, vocab = 128256, layers = 8;
  double rope_theta = 10000.0;
  float std = 0.02f;        // projections and MLP
  float embed_std = 1.0f;   // embeddings and LM head
  std::uint64_t seed = 1;
  // The family (variant "rope" only for any but llama: rope_config is a
  // Llama-file field) and raw config.json members appended to the file, e.g.
  // "\"sliding_window\": 300" for mistral or "\"attention_multiplier\": 0.5" for granite.
  std::string model_type = "llama", architecture = "LlamaForCausalLM", extra_config = "";
};

// Writes the checkpoint into `dir` (created); throws on I/O errors.
inline void write_random_checkpoint(const std::filesystem::path& dir, const RandomModelShape& s) {
  std::filesystem::create_directories(dir);
  const bool eh = s.variant == "eh", twins = s.variant != "rope";
  const long d = s.head_dim, h = s.hidden;
  const long q_rows = (eh ? s.heads / 2 : s.heads) * d, kv_rows = (eh ? s.kv_heads / 2 : s.kv_heads) * d;
  const long o_cols = (s.variant == "ec" ? 2 * s.heads : s.heads) * d;
  std::ofstream config(dir / "config.json");
  config << "{\"architectures\": [\"" << s.architecture << "\"], \"model_type\": \"" << s.model_type
         << "\", \"hidden_act\": \"silu\", "
         << "\"vocab_size\": " << s.vocab << ", \"hidden_size\": " << h << ", \"intermediate_size\": " << s.intermediate
         << ", \"num_hidden_layers\": " << s.layers << ", \"num_attention_heads\": " << s.heads
         << ", \"num_key_value_heads\": " << s.kv_heads << ", \"head_dim\": " << d
         << ", \"rms_norm_eps\": 1e-05, \"rope_theta\": " << s.rope_theta
         << ", \"max_position_embeddings\": 4096, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\"";
  if (twins) config << ", \"rope_config\": {\"imag\": true, \"imag_mode\": \"" << (eh ? "imag1" : "imag2") << "\"}";
  if (!s.extra_config.empty()) config << ", " << s.extra_config;
  config << "}\n";
  if (!config) throw std::runtime_error("cannot write " + (dir / "config.json").string());

  std::uint64_t state = s.seed * 0x9e3779b97f4a7c15ULL + 1;
  auto tensor = [&](long rows, long cols, float std) {
    std::vector<__nv_bfloat16> t(static_cast<std::size_t>(rows) * cols);
    const float half_width = std * std::sqrt(3.0f);  // uniform(-w, w) has std w / sqrt(3)
    for (auto& x : t) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      const float u = static_cast<float>(state >> 40) * 0x1.0p-24f;  // [0, 1)
      x = __float2bfloat16_rn((2.0f * u - 1.0f) * half_width);
    }
    return t;
  };
  auto ones = [](long n) { return std::vector<__nv_bfloat16>(static_cast<std::size_t>(n), __float2bfloat16_rn(1.0f)); };
  struct Named {
    std::string name;
    long rows, cols;
    std::vector<__nv_bfloat16> data;
  };
  std::vector<Named> all;
  all.push_back({"model.embed_tokens.weight", s.vocab, h, tensor(s.vocab, h, s.embed_std)});
  all.push_back({"lm_head.weight", s.vocab, h, tensor(s.vocab, h, s.embed_std / std::sqrt(static_cast<float>(h)))});
  all.push_back({"model.norm.weight", 1, h, ones(h)});
  for (int l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    all.push_back({p + "input_layernorm.weight", 1, h, ones(h)});
    all.push_back({p + "post_attention_layernorm.weight", 1, h, ones(h)});
    all.push_back({p + "self_attn.q_proj.weight", q_rows, h, tensor(q_rows, h, s.std)});
    all.push_back({p + "self_attn.k_proj.weight", kv_rows, h, tensor(kv_rows, h, s.std)});
    all.push_back({p + "self_attn.v_proj.weight", kv_rows, h, tensor(kv_rows, h, s.std)});
    all.push_back({p + "self_attn.o_proj.weight", h, o_cols, tensor(h, o_cols, s.std)});
    all.push_back({p + "mlp.gate_proj.weight", s.intermediate, h, tensor(s.intermediate, h, s.std)});
    all.push_back({p + "mlp.up_proj.weight", s.intermediate, h, tensor(s.intermediate, h, s.std)});
    all.push_back({p + "mlp.down_proj.weight", h, s.intermediate, tensor(h, s.intermediate, s.std)});
  }
  std::vector<io::TensorData> tensors;
  for (const auto& n : all) {
    std::vector<std::uint64_t> shape{static_cast<std::uint64_t>(n.cols)};
    if (n.rows != 1) shape.insert(shape.begin(), static_cast<std::uint64_t>(n.rows));
    tensors.push_back({n.name, io::Dtype::BF16, shape,
                       std::span<const std::byte>(reinterpret_cast<const std::byte*>(n.data.data()),
                                                  n.data.size() * sizeof(__nv_bfloat16))});
  }
  io::write_safetensors(dir / "model.safetensors", std::move(tensors));
}

}  // namespace ropescope::kernels::lab
