// load_model: config, variant resolution, and checked weight views.
#include "model/weights.hpp"

#include <fmt/format.h>

#include <map>
#include <set>

#include "core/error.hpp"
#include "io/strict_json.hpp"

namespace ropescope::model {

namespace {

using Shape = std::vector<std::uint64_t>;

std::string shape_text(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

struct Expectation {
  const io::Checkpoint& checkpoint;
  io::Dtype dtype;
  std::string dtype_reason;
  std::set<std::string>& used;

  io::TensorView get(const std::string& name, const Shape& shape, const std::string& why) const {
    if (!checkpoint.contains(name))
      throw FormatError(fmt::format("{}: missing tensor {} (expected {} {}{})", checkpoint.directory().string(),
                                    io::json_quoted(name), io::to_string(dtype), shape_text(shape), why));
    io::TensorView view = checkpoint.tensor(name);
    used.insert(name);
    if (view.shape() != shape)
      throw FormatError(fmt::format("{}: tensor {} has shape {}, expected {}{}", view.file().string(),
                                    io::json_quoted(name), shape_text(view.shape()), shape_text(shape), why));
    if (view.dtype() != dtype)
      throw FormatError(fmt::format("{}: tensor {} is {}, expected {} ({})", view.file().string(),
                                    io::json_quoted(name), io::to_string(view.dtype()), io::to_string(dtype),
                                    dtype_reason));
    return view;
  }
};

// Which variant the layer-0 attention shapes fit, with the shapes for messages.
struct ShapeEvidence {
  std::optional<Variant> variant;
  std::string description;  // "layer 0: q_proj [..], k_proj [..], o_proj [..]"
};

ShapeEvidence variant_from_shapes(const io::Checkpoint& ck, const ModelConfig& c) {
  const std::string p = "model.layers.0.self_attn.";
  ShapeEvidence e;
  for (const char* t : {"q_proj", "k_proj", "o_proj"})
    if (!ck.contains(p + t + ".weight")) return e;
  const auto q = ck.tensor(p + "q_proj.weight").shape(), k = ck.tensor(p + "k_proj.weight").shape(),
             o = ck.tensor(p + "o_proj.weight").shape();
  e.description = fmt::format("layer 0: q_proj {}, k_proj {}, o_proj {}", shape_text(q), shape_text(k), shape_text(o));
  if (q.size() != 2 || k.size() != 2 || o.size() != 2) return e;
  for (Variant v : {Variant::rope, Variant::ec, Variant::eh}) {
    try {
      const HeadLayout L = head_layout(v, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
      if (q[0] == std::uint64_t(L.q_rows()) && k[0] == std::uint64_t(L.kv_rows()) && o[1] == std::uint64_t(L.o_columns()))
        e.variant = v;
    } catch (const ArgumentError&) {
      // This variant does not fit the head counts (eh with odd counts).
    }
  }
  return e;
}

std::string said(const std::optional<Variant>& v, const char* absent) { return v ? to_string(*v) : absent; }

Variant resolve_variant(const std::filesystem::path& dir, const ModelConfig& c, const LoadOptions& options,
                        const io::Checkpoint& ck, std::string& source) {
  const ShapeEvidence shapes = variant_from_shapes(ck, c);
  const auto& config = c.rope_config_variant;
  const auto& forced = options.variant;
  const std::vector<std::optional<Variant>> stated = {config, forced, shapes.variant};
  std::optional<Variant> first;
  bool contradiction = false;
  for (const auto& s : stated) {
    if (!s) continue;
    if (first && *first != *s) contradiction = true;
    if (!first) first = s;
  }
  if (contradiction) {
    const std::string message = fmt::format(
        "{}: contradictory RoPE variant: config.json rope_config says {}, the override says {}, tensor shapes say {} ({})",
        dir.string(), said(config, "nothing"), said(forced, "nothing"), said(shapes.variant, "nothing"),
        shapes.description.empty() ? "no layer-0 attention tensors" : shapes.description);
    // The override is the odd one out when config and shapes agree with each other.
    const bool override_wrong = forced && (!config || !shapes.variant || *config == *shapes.variant) &&
                                ((config && *config != *forced) || (shapes.variant && *shapes.variant != *forced));
    if (override_wrong) throw ArgumentError(message);
    throw FormatError(message);
  }
  if (first) {
    source = forced ? "override" : config ? "rope_config" : "tensor shapes";
    return *first;
  }
  if (!shapes.description.empty())
    throw FormatError(fmt::format("{}: tensor shapes fit no RoPE variant with H={} KV={} d={} ({})", dir.string(),
                                  c.num_attention_heads, c.num_key_value_heads, c.head_dim, shapes.description));
  source = "default";
  return Variant::rope;
}

}  // namespace

Model load_model(const std::filesystem::path& directory, const LoadOptions& options) {
  if (!std::filesystem::is_directory(directory))
    throw ArgumentError(fmt::format("model directory {} does not exist or is not a directory", directory.string()));
  Model m;
  m.directory = directory;
  m.config = load_model_config(directory / "config.json", &m.warnings);
  m.checkpoint = std::make_shared<const io::Checkpoint>(directory);
  const io::Checkpoint& ck = *m.checkpoint;
  ModelConfig& c = m.config;

  c.variant = resolve_variant(directory, c, options, ck, m.variant_source);
  try {
    m.layout = head_layout(c);
  } catch (const ArgumentError& e) {
    throw FormatError(fmt::format("{}: variant {}: {}", directory.string(), to_string(c.variant), e.what()));
  }

  // The dtype every weight must have.
  std::string dtype_reason = "config.json torch_dtype";
  if (!c.dtype_in_config) {
    const std::string embed = "model.embed_tokens.weight";
    if (ck.contains(embed)) c.dtype = ck.tensor(embed).dtype();
    dtype_reason = "the dtype of " + embed + "; config.json names none";
  }
  if (c.dtype != io::Dtype::F32 && c.dtype != io::Dtype::F16 && c.dtype != io::Dtype::BF16)
    throw FormatError(fmt::format("{}: unsupported dtype {} in tensor \"model.embed_tokens.weight\" (expected F32, F16 or BF16)",
                                  directory.string(), io::to_string(c.dtype)));

  std::set<std::string> used;
  const Expectation want{ck, c.dtype, dtype_reason, used};
  const HeadLayout& L = m.layout;
  const std::uint64_t h = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, d = c.head_dim;
  const std::uint64_t q_rows = L.q_rows(), kv_rows = L.kv_rows(), o_cols = L.o_columns();
  const std::string variant = to_string(c.variant);
  const std::string q_why = fmt::format(" for variant {}: q_proj rows = {} query heads x d {}", variant, L.query_heads, d);
  const std::string kv_why = fmt::format(" for variant {}: rows = {} KV heads x d {}", variant, L.kv_heads, d);
  const std::string o_why = fmt::format(" for variant {}: o_proj columns = {} attention heads x d {}", variant,
                                        L.attention_heads, d);

  Weights& w = m.weights;
  w.embed_tokens = want.get("model.embed_tokens.weight", {V, h}, "");
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    LayerWeights l;
    l.input_layernorm = want.get(p + "input_layernorm.weight", {h}, "");
    l.q_proj = want.get(p + "self_attn.q_proj.weight", {q_rows, h}, q_why);
    l.k_proj = want.get(p + "self_attn.k_proj.weight", {kv_rows, h}, kv_why);
    l.v_proj = want.get(p + "self_attn.v_proj.weight", {kv_rows, h}, kv_why);
    l.o_proj = want.get(p + "self_attn.o_proj.weight", {h, o_cols}, o_why);
    if (c.attention_bias) {
      l.q_bias = want.get(p + "self_attn.q_proj.bias", {q_rows}, q_why);
      l.k_bias = want.get(p + "self_attn.k_proj.bias", {kv_rows}, kv_why);
      l.v_bias = want.get(p + "self_attn.v_proj.bias", {kv_rows}, kv_why);
      l.o_bias = want.get(p + "self_attn.o_proj.bias", {h}, "");
    }
    l.post_attention_layernorm = want.get(p + "post_attention_layernorm.weight", {h}, "");
    l.gate_proj = want.get(p + "mlp.gate_proj.weight", {I, h}, "");
    l.up_proj = want.get(p + "mlp.up_proj.weight", {I, h}, "");
    l.down_proj = want.get(p + "mlp.down_proj.weight", {h, I}, "");
    if (c.mlp_bias) {
      l.gate_bias = want.get(p + "mlp.gate_proj.bias", {I}, "");
      l.up_bias = want.get(p + "mlp.up_proj.bias", {I}, "");
      l.down_bias = want.get(p + "mlp.down_proj.bias", {h}, "");
    }
    w.layers.push_back(std::move(l));
  }
  w.norm = want.get("model.norm.weight", {h}, "");
  w.lm_head = c.tie_word_embeddings ? w.embed_tokens
                                    : want.get("lm_head.weight", {V, h}, " (tie_word_embeddings is false)");

  for (const auto& name : ck.names()) {
    if (used.count(name)) continue;
    if (name.ends_with(".rotary_emb.inv_freq")) continue;  // buffers older transformers saved
    m.warnings.push_back(fmt::format("{}: unexpected tensor {} ignored{}", ck.tensor(name).file().string(),
                                     io::json_quoted(name),
                                     name == "lm_head.weight" ? " (tie_word_embeddings is true)" : ""));
  }
  return m;
}

ParameterCounts count_parameters(const Model& model) {
  ParameterCounts n;
  const Weights& w = model.weights;
  auto add = [](std::uint64_t& total, const io::TensorView& v) { total += v.numel(); };
  auto add_opt = [&](std::uint64_t& total, const std::optional<io::TensorView>& v) {
    if (v) add(total, *v);
  };
  add(n.embedding, w.embed_tokens);
  for (const auto& l : w.layers) {
    add(n.norm, l.input_layernorm);
    add(n.norm, l.post_attention_layernorm);
    for (const auto* v : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj}) add(n.attention, *v);
    for (const auto* v : {&l.q_bias, &l.k_bias, &l.v_bias, &l.o_bias}) add_opt(n.attention, *v);
    for (const auto* v : {&l.gate_proj, &l.up_proj, &l.down_proj}) add(n.mlp, *v);
    for (const auto* v : {&l.gate_bias, &l.up_bias, &l.down_bias}) add_opt(n.mlp, *v);
  }
  add(n.norm, w.norm);
  if (!model.config.tie_word_embeddings) add(n.lm_head, w.lm_head);
  return n;
}

}  // namespace ropescope::model
