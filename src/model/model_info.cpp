// A checkpoint's description as one JSON document (see model_info.hpp).
#include "model/model_info.hpp"

#include "io/dtype.hpp"
#include "model/head_layout.hpp"

namespace ropescope::model {
namespace {

nlohmann::json scaling_json(const theory::RopeScaling& s) {
  nlohmann::json j = {{"type", theory::to_string(s.type)}};
  if (s.type == theory::ScalingType::none) return j;
  j["factor"] = s.factor;
  if (s.type != theory::ScalingType::linear) j["original_max_position_embeddings"] = s.original_max_position;
  if (s.type == theory::ScalingType::yarn) {
    j["beta_fast"] = s.beta_fast;
    j["beta_slow"] = s.beta_slow;
    if (s.mscale != 0) j["mscale"] = s.mscale;
    if (s.mscale_all_dim != 0) j["mscale_all_dim"] = s.mscale_all_dim;
    if (s.attention_factor != 0) j["attention_factor"] = s.attention_factor;
    j["truncate"] = s.truncate;
  }
  if (s.type == theory::ScalingType::llama3) {
    j["low_freq_factor"] = s.low_freq_factor;
    j["high_freq_factor"] = s.high_freq_factor;
  }
  if (s.type == theory::ScalingType::longrope) {
    j["short_factor"] = s.short_factor;
    j["long_factor"] = s.long_factor;
    if (s.attention_factor != 0) j["attention_factor"] = s.attention_factor;
  }
  return j;
}

}  // namespace

nlohmann::json model_info(const Model& m) {
  const ParameterCounts p = count_parameters(m);
  const auto& c = m.config;
  const auto& L = m.layout;
  const int imaginary = c.variant == Variant::rope ? 0 : L.attention_heads / 2;
  nlohmann::json heads = nlohmann::json::array();
  for (const auto& h : L.heads())
    heads.push_back({{"index", h.index}, {"query_head", h.query_head}, {"kind", to_string(h.kind)},
                     {"kv_head", h.kv_head}});
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : m.checkpoint->files())
    files.push_back({{"name", f->path().filename().string()},
                     {"bytes", f->header().data_offset + (f->header().tensors.empty() ? 0 : f->header().tensors.back().end)},
                     {"tensors", f->header().tensors.size()}});
  return {
      {"directory", m.directory.string()},
      {"variant", to_string(c.variant)},
      {"variant_source", m.variant_source},
      {"model_type", c.model_type},
      {"family", c.arch.family},
      {"architecture", to_json(c.arch)},
      {"layers", c.num_hidden_layers},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"vocab_size", c.vocab_size},
      {"config_heads", {{"num_attention_heads", c.num_attention_heads}, {"num_key_value_heads", c.num_key_value_heads}}},
      {"query_heads", L.query_heads},
      {"attention_heads", {{"total", L.attention_heads}, {"real", L.attention_heads - imaginary}, {"imaginary", imaginary}}},
      {"kv_heads", L.kv_heads},
      {"gqa_group_size", L.group_size},
      {"head_dim", L.head_dim},
      {"heads", heads},
      {"rope", {{"base", c.rope.base},
                {"partial_rotary_factor", c.rope.partial_rotary_factor},
                {"rotary_dim", c.rope.rotary_dim()},
                {"max_position_embeddings", c.max_position_embeddings},
                {"scaling", scaling_json(c.rope.scaling)}}},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"dtype", std::string(io::to_string(c.dtype))},
      {"parameters", {{"embedding", p.embedding}, {"attention", p.attention}, {"mlp", p.mlp}, {"norm", p.norm},
                      {"lm_head", p.lm_head}, {"total", p.total()}}},
      {"kv_cache_bytes_per_token", kv_cache_bytes_per_token(c)},
      {"sharded", m.checkpoint->sharded()},
      {"files", files},
      {"warnings", m.warnings},
  };
}

}  // namespace ropescope::model
