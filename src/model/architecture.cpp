// Names of the architecture's kinds and the list of its non-Llama features
// (see architecture.hpp).
#include "model/architecture.hpp"

#include <fmt/format.h>

#include <map>

namespace ropescope::model {

const char* to_string(NormKind kind) {
  switch (kind) {
    case NormKind::rms: return "rmsnorm";
    case NormKind::rms_offset: return "rmsnorm (1+w)";
    case NormKind::layer_norm: return "layernorm";
  }
  return "?";
}

const char* to_string(BlockKind kind) {
  switch (kind) {
    case BlockKind::pre_norm: return "pre-norm";
    case BlockKind::sandwich: return "sandwich norms";
    case BlockKind::post_norm: return "post-norm";
    case BlockKind::parallel_shared_norm: return "parallel attention + MLP, one norm";
    case BlockKind::parallel_two_norms: return "parallel attention + MLP, two norms";
  }
  return "?";
}

const char* to_string(Activation act) {
  switch (act) {
    case Activation::silu: return "silu";
    case Activation::gelu_erf: return "gelu (erf)";
    case Activation::gelu_tanh: return "gelu (tanh)";
  }
  return "?";
}

const char* to_string(QkNormKind kind) {
  switch (kind) {
    case QkNormKind::none: return "none";
    case QkNormKind::per_head: return "per head, shared weight";
    case QkNormKind::per_head_weights: return "per head, a weight per head";
    case QkNormKind::full_width: return "over the whole projection";
  }
  return "?";
}

bool Architecture::any_window() const {
  for (const auto& l : layers)
    if (l.window) return true;
  return false;
}

bool Architecture::any_nope() const {
  for (const auto& l : layers)
    if (l.rope == LayerRope::none) return true;
  return false;
}

std::vector<std::string> Architecture::features() const {
  std::vector<std::string> out;
  if (block != BlockKind::pre_norm) out.push_back(fmt::format("block: {}", to_string(block)));
  if (norm.kind != NormKind::rms) out.push_back(fmt::format("norm: {}{}", to_string(norm.kind), norm.bias ? " with bias" : ""));
  if (!mlp.gated || mlp.act != Activation::silu)
    out.push_back(fmt::format("mlp: {} {}", mlp.gated ? "gated" : "plain", to_string(mlp.act)));
  if (mlp.bias) out.push_back("mlp biases");
  if (attention.qkv_bias) out.push_back("q/k/v biases");
  if (attention.o_bias) out.push_back("o bias");
  if (attention.qk_norm != QkNormKind::none)
    out.push_back(fmt::format("qk-norm: {} {}", to_string(attention.qk_norm_spec.kind), to_string(attention.qk_norm)));
  if (attention.softcap) out.push_back(fmt::format("attention softcap {}", *attention.softcap));
  // Windows and NoPE layers, grouped: "window 4096 on layers 0,2,4".
  std::map<long, std::vector<int>> windows;
  std::vector<int> nope, local;
  for (int i = 0; i < static_cast<int>(layers.size()); ++i) {
    if (layers[i].window) windows[layers[i].window].push_back(i);
    if (layers[i].rope == LayerRope::none) nope.push_back(i);
    if (layers[i].rope == LayerRope::local) local.push_back(i);
  }
  for (const auto& [w, ls] : windows) out.push_back(fmt::format("sliding window {} on layers {}", w, fmt::join(ls, ",")));
  if (!nope.empty()) out.push_back(fmt::format("NoPE (no rotation) on layers {}", fmt::join(nope, ",")));
  if (local_rope && !local.empty())
    out.push_back(fmt::format("local RoPE base {} on layers {}", local_rope->base, fmt::join(local, ",")));
  if (interleaved_rotary) out.push_back("interleaved rotary pairs (permuted to rotate_half at load)");
  if (embedding_multiplier != 1) out.push_back(fmt::format("embedding multiplier {}", embedding_multiplier));
  if (residual_multiplier != 1) out.push_back(fmt::format("residual multiplier {}", residual_multiplier));
  if (logit_multiplier != 1) out.push_back(fmt::format("logit multiplier {}", logit_multiplier));
  if (final_softcap) out.push_back(fmt::format("final logit softcap {}", *final_softcap));
  return out;
}

nlohmann::json to_json(const Architecture& arch) {
  auto norm_json = [](const NormSpec& n) {
    return nlohmann::json{{"kind", to_string(n.kind)}, {"eps", n.eps}, {"bias", n.bias}};
  };
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : arch.layers)
    layers.push_back({{"window", l.window},
                      {"rope", l.rope == LayerRope::none ? "none" : l.rope == LayerRope::global ? "global" : "local"}});
  nlohmann::json j = {
      {"family", arch.family},
      {"block", to_string(arch.block)},
      {"norm", norm_json(arch.norm)},
      {"mlp", {{"gated", arch.mlp.gated}, {"activation", to_string(arch.mlp.act)}, {"bias", arch.mlp.bias}}},
      {"attention",
       {{"scale", arch.attention.scale},
        {"softcap", arch.attention.softcap ? nlohmann::json(*arch.attention.softcap) : nlohmann::json()},
        {"qk_norm", to_string(arch.attention.qk_norm)},
        {"qkv_bias", arch.attention.qkv_bias},
        {"o_bias", arch.attention.o_bias}}},
      {"layers", layers},
      {"interleaved_rotary", arch.interleaved_rotary},
      {"embedding_multiplier", arch.embedding_multiplier},
      {"residual_multiplier", arch.residual_multiplier},
      {"logit_multiplier", arch.logit_multiplier},
      {"final_softcap", arch.final_softcap ? nlohmann::json(*arch.final_softcap) : nlohmann::json()},
      {"features", arch.features()},
  };
  if (arch.attention.qk_norm != QkNormKind::none) j["attention"]["qk_norm_spec"] = norm_json(arch.attention.qk_norm_spec);
  if (arch.local_rope)
    j["local_rope"] = {{"base", arch.local_rope->base}, {"scaling", theory::to_string(arch.local_rope->scaling.type)}};
  return j;
}

}  // namespace ropescope::model
