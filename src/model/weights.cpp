// load_model: config, variant resolution, each family's tensor names, and
// checked weight views (fused tensors split, interleaved rotary permuted),
// every consumed tensor scanned for NaN and infinity (weight_scan.hpp).
#include "model/weights.hpp"

#include <fmt/format.h>

#include <functional>
#include <map>
#include <numeric>
#include <set>

#include "core/error.hpp"
#include "io/strict_json.hpp"
#include "model/weight_scan.hpp"

namespace ropescope::model {

namespace {

using Shape = std::vector<std::uint64_t>;

std::string shape_text(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// How a family lays out a fused q/k/v tensor.
enum class FusedQkv {
  none,      // separate q_proj, k_proj, v_proj
  blocks,    // [all q | all k | all v] rows (Phi-3 qkv_proj)
  per_head,  // per head h: [q_h | k_h | v_h] rows (GPT-NeoX query_key_value; no GQA)
};

// One family's tensor names. Layer names are relative to `layer` ("...{}." with the index).
struct TensorNames {
  std::string embed = "model.embed_tokens.weight";
  std::string final_norm = "model.norm";
  std::string lm_head = "lm_head.weight";
  std::string layer = "model.layers.{}.";
  std::string attn_norm = "input_layernorm", post_attn_norm, mlp_norm = "post_attention_layernorm", post_mlp_norm;
  std::string attn = "self_attn.";
  std::string q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj";
  FusedQkv fused_qkv = FusedQkv::none;
  std::string qkv;
  std::string q_norm = "q_norm", k_norm = "k_norm";
  bool qk_norm_tensor_per_head = false;  // StableLM: q_layernorm.norms.{h}.weight, one [d] tensor per head
  std::string mlp = "mlp.", gate = "gate_proj", up = "up_proj", down = "down_proj";
  std::string gate_up;  // fused [gate | up] rows (Phi-3, GLM)
};

TensorNames names_of(const ModelConfig& c) {
  TensorNames n;
  const std::string& family = c.arch.family;
  switch (c.arch.block) {
    case BlockKind::pre_norm:
    case BlockKind::parallel_two_norms:
      break;
    case BlockKind::sandwich:
      if (family == "glm4") {
        n.post_attn_norm = "post_self_attn_layernorm";
        n.mlp_norm = "post_attention_layernorm";
        n.post_mlp_norm = "post_mlp_layernorm";
      } else {  // Gemma 2 / 3
        n.post_attn_norm = "post_attention_layernorm";
        n.mlp_norm = "pre_feedforward_layernorm";
        n.post_mlp_norm = "post_feedforward_layernorm";
      }
      break;
    case BlockKind::post_norm:  // OLMo 2 / 3
      n.attn_norm.clear();
      n.mlp_norm.clear();
      n.post_attn_norm = "post_attention_layernorm";
      n.post_mlp_norm = "post_feedforward_layernorm";
      break;
    case BlockKind::parallel_shared_norm:
      n.mlp_norm.clear();
      break;
  }
  if (family == "phi3") {
    n.fused_qkv = FusedQkv::blocks;
    n.qkv = "qkv_proj";
    n.gate_up = "gate_up_proj";
  } else if (family == "glm" || family == "glm4") {
    n.gate_up = "gate_up_proj";
  } else if (family == "gpt_neox") {
    n.embed = "gpt_neox.embed_in.weight";
    n.final_norm = "gpt_neox.final_layer_norm";
    n.lm_head = "embed_out.weight";
    n.layer = "gpt_neox.layers.{}.";
    n.attn = "attention.";
    n.fused_qkv = FusedQkv::per_head;
    n.qkv = "query_key_value";
    n.o = "dense";
    n.up = "dense_h_to_4h";
    n.down = "dense_4h_to_h";
  } else if (family == "starcoder2") {
    n.up = "c_fc";
    n.down = "c_proj";
  } else if (family == "stablelm") {
    n.q_norm = "q_layernorm.norms.{}";
    n.k_norm = "k_layernorm.norms.{}";
    n.qk_norm_tensor_per_head = true;
  }
  if (!c.tensor_prefix.empty()) {
    n.embed = c.tensor_prefix + n.embed;
    n.final_norm = c.tensor_prefix + n.final_norm;
    n.lm_head = c.tensor_prefix + n.lm_head;
    n.layer = c.tensor_prefix + n.layer;
  }
  return n;
}

// The rotate_half order of an interleaved head's rows (ARCHITECTURES.md 1.6):
// new row j takes old row perm[j] = [0, 2, .., r-2, 1, 3, .., r-1, r, .., d-1].
std::vector<std::uint64_t> interleave_to_half(int d, int r) {
  std::vector<std::uint64_t> perm(d);
  for (int j = 0; j < d; ++j) perm[j] = j < r / 2 ? 2 * j : j < r ? 2 * (j - r / 2) + 1 : j;
  return perm;
}

// Rows of `heads` heads of d rows each, head h starting at first_row(h), each
// head's rows in `perm` order (identity when empty).
std::vector<std::uint64_t> head_rows(int heads, int d, const std::function<std::uint64_t(int)>& first_row,
                                     const std::vector<std::uint64_t>& perm) {
  std::vector<std::uint64_t> rows;
  rows.reserve(static_cast<std::size_t>(heads) * d);
  for (int h = 0; h < heads; ++h)
    for (int j = 0; j < d; ++j) rows.push_back(first_row(h) + (perm.empty() ? j : perm[j]));
  return rows;
}

bool is_identity(const std::vector<std::uint64_t>& rows, std::uint64_t count) {
  if (rows.size() != count) return false;
  for (std::uint64_t i = 0; i < count; ++i)
    if (rows[i] != i) return false;
  return true;
}

enum class Part { embedding, attention, mlp, norm, lm_head };

struct Loader {
  const io::Checkpoint& checkpoint;
  io::Dtype dtype;
  std::string dtype_reason;
  std::set<std::string> used;
  ParameterCounts counts;

  io::TensorView get(const std::string& name, const Shape& shape, const std::string& why, Part part) {
    if (!checkpoint.contains(name))
      throw FormatError(fmt::format("{}: missing tensor {} (expected {} {}{})", checkpoint.directory().string(),
                                    io::json_quoted(name), io::to_string(dtype), shape_text(shape), why));
    io::TensorView view = checkpoint.tensor(name);
    if (view.shape() != shape)
      throw FormatError(fmt::format("{}: tensor {} has shape {}, expected {}{}", view.file().string(),
                                    io::json_quoted(name), shape_text(view.shape()), shape_text(shape), why));
    if (view.dtype() != dtype)
      throw FormatError(fmt::format("{}: tensor {} is {}, expected {} ({})", view.file().string(),
                                    io::json_quoted(name), io::to_string(view.dtype()), io::to_string(dtype),
                                    dtype_reason));
    if (used.insert(name).second) {
      std::uint64_t& total = part == Part::embedding ? counts.embedding
                             : part == Part::attention ? counts.attention
                             : part == Part::mlp       ? counts.mlp
                             : part == Part::norm      ? counts.norm
                                                       : counts.lm_head;
      total += view.numel();
    }
    return view;
  }
  WeightView whole(const std::string& name, const Shape& shape, const std::string& why, Part part) {
    WeightView w;
    w.tensor = get(name, shape, why, part);
    w.row_elements = shape.size() == 2 ? shape[1] : 1;
    return w;
  }
  // Rows of a tensor checked as `shape`; an identity selection is stored as the whole tensor.
  WeightView rows(const std::string& name, const Shape& shape, std::vector<std::uint64_t> rows, const std::string& why,
                  Part part) {
    WeightView w = whole(name, shape, why, part);
    if (!is_identity(rows, shape[0])) w.rows = std::move(rows);
    return w;
  }
};

// Which variant the layer-0 attention shapes fit, with the shapes for messages (Llama layout only).
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
  if (c.arch.family != "llama") {
    // RoPE++ checkpoints exist only in the Llama layout (with rope_config).
    if (options.variant && *options.variant != Variant::rope)
      throw ArgumentError(fmt::format("{}: variant {} needs RoPE++ weights; a {} checkpoint is vanilla RoPE (RoPE++ "
                                      "checkpoints are Llama-layout files with rope_config)",
                                      dir.string(), to_string(*options.variant), c.arch.family));
    source = options.variant ? "override" : "default";
    return Variant::rope;
  }
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

// The attention weights of one layer: separate or fused q/k/v, permuted for
// interleaved rotary, with biases and qk-norms.
void load_attention(Loader& load, const ModelConfig& c, const HeadLayout& L, const TensorNames& n,
                    const std::string& p, LayerWeights& l) {
  const auto& a = c.arch.attention;
  const std::uint64_t h = c.hidden_size, d = L.head_dim;
  const int Q = L.query_heads, KV = L.kv_heads;
  const std::uint64_t q_rows = L.q_rows(), kv_rows = L.kv_rows(), o_cols = L.o_columns();
  const std::string variant = to_string(c.variant);
  const std::string q_why = fmt::format(" for variant {}: q_proj rows = {} query heads x d {}", variant, Q, d);
  const std::string kv_why = fmt::format(" for variant {}: rows = {} KV heads x d {}", variant, KV, d);
  const std::string o_why = fmt::format(" for variant {}: o_proj columns = {} attention heads x d {}", variant,
                                        L.attention_heads, d);
  const std::vector<std::uint64_t> perm =
      c.arch.interleaved_rotary ? interleave_to_half(static_cast<int>(d), c.rope.rotary_dim()) : std::vector<std::uint64_t>{};
  const std::vector<std::uint64_t> none;
  const std::string at = p + n.attn;

  // first_row(h) of q, k and v heads inside the tensor each is read from.
  std::function<std::uint64_t(int)> q_first = [&](int i) { return std::uint64_t(i) * d; };
  std::function<std::uint64_t(int)> k_first = q_first, v_first = q_first;
  std::string q_name = at + n.q, k_name = at + n.k, v_name = at + n.v;
  Shape q_shape = {q_rows, h}, k_shape = {kv_rows, h}, v_shape = {kv_rows, h};
  std::string q_why_fused = q_why, kv_why_fused = kv_why;
  if (n.fused_qkv != FusedQkv::none) {
    q_name = k_name = v_name = at + n.qkv;
    q_shape = k_shape = v_shape = {q_rows + 2 * kv_rows, h};
    if (n.fused_qkv == FusedQkv::blocks) {
      q_why_fused = kv_why_fused = fmt::format(" (fused q, k, v: ({} + 2 x {}) heads x d {})", Q, KV, d);
      k_first = [&](int i) { return q_rows + std::uint64_t(i) * d; };
      v_first = [&](int i) { return q_rows + kv_rows + std::uint64_t(i) * d; };
    } else {
      q_why_fused = kv_why_fused = fmt::format(" (fused per head [q_h | k_h | v_h]: 3 x {} heads x d {})", Q, d);
      q_first = [&](int i) { return 3 * std::uint64_t(i) * d; };
      k_first = [&](int i) { return 3 * std::uint64_t(i) * d + d; };
      v_first = [&](int i) { return 3 * std::uint64_t(i) * d + 2 * d; };
    }
  }
  auto weight_and_bias = [&](const std::string& name, const Shape& shape, int heads,
                             const std::function<std::uint64_t(int)>& first, const std::vector<std::uint64_t>& order,
                             const std::string& why, WeightView& weight, std::optional<WeightView>& bias) {
    const auto rows = head_rows(heads, static_cast<int>(d), first, order);
    weight = load.rows(name + ".weight", shape, rows, why, Part::attention);
    if (a.qkv_bias) bias = load.rows(name + ".bias", {shape[0]}, rows, why, Part::attention);
  };
  weight_and_bias(q_name, q_shape, Q, q_first, perm, q_why_fused, l.q_proj, l.q_bias);
  weight_and_bias(k_name, k_shape, KV, k_first, perm, kv_why_fused, l.k_proj, l.k_bias);
  weight_and_bias(v_name, v_shape, KV, v_first, none, kv_why_fused, l.v_proj, l.v_bias);
  l.o_proj = load.whole(at + n.o + ".weight", {h, o_cols}, o_why, Part::attention);
  if (a.o_bias) l.o_bias = load.whole(at + n.o + ".bias", {h}, "", Part::attention);

  // qk-norm weights, as one vector per projection (per-head weights in head order).
  auto norm_weight = [&](const std::string& base, int heads, std::vector<WeightView>& out) {
    switch (a.qk_norm) {
      case QkNormKind::none: return;
      case QkNormKind::per_head:
        out.push_back(load.rows(at + base + ".weight", {d},
                                head_rows(1, static_cast<int>(d), [](int) { return std::uint64_t{0}; }, perm),
                                " (per-head qk-norm: d)", Part::attention));
        return;
      case QkNormKind::full_width:
        out.push_back(load.whole(at + base + ".weight", {std::uint64_t(heads) * d},
                                 " (qk-norm over the whole projection: heads x d)", Part::attention));
        return;
      case QkNormKind::per_head_weights:
        if (n.qk_norm_tensor_per_head) {  // StableLM: one [d] tensor per head
          for (int i = 0; i < heads; ++i)
            out.push_back(load.rows(at + fmt::format(fmt::runtime(base), i) + ".weight", {d},
                                    head_rows(1, static_cast<int>(d), [](int) { return std::uint64_t{0}; }, perm),
                                    " (per-head qk LayerNorm: d)", Part::attention));
          return;
        }
        // One [heads, d] tensor (Cohere), viewed as heads * d elements so rows can be permuted per head.
        WeightView v = load.whole(at + base + ".weight", {std::uint64_t(heads), d},
                                  " (per-head qk-norm weights: heads x d)", Part::attention);
        v.row_elements = 1;
        const auto rows = head_rows(heads, static_cast<int>(d), [&](int i) { return std::uint64_t(i) * d; }, perm);
        if (!is_identity(rows, rows.size())) v.rows = rows;
        out.push_back(v);
        return;
    }
  };
  norm_weight(n.q_norm, Q, l.q_norm);
  norm_weight(n.k_norm, KV, l.k_norm);
}

std::optional<NormWeights> load_norm(Loader& load, const ModelConfig& c, const std::string& name) {
  if (name.empty()) return std::nullopt;
  NormWeights w;
  const std::uint64_t h = c.hidden_size;
  w.weight = load.whole(name + ".weight", {h}, "", Part::norm);
  if (c.arch.norm.bias) w.bias = load.whole(name + ".bias", {h}, "", Part::norm);
  return w;
}

void load_mlp(Loader& load, const ModelConfig& c, const TensorNames& n, const std::string& p, LayerWeights& l) {
  const std::uint64_t h = c.hidden_size, I = c.intermediate_size;
  const std::string m = p + n.mlp;
  const bool bias = c.arch.mlp.bias;
  if (!n.gate_up.empty()) {
    std::vector<std::uint64_t> gate(I), up(I);
    std::iota(gate.begin(), gate.end(), 0);
    std::iota(up.begin(), up.end(), I);
    const std::string why = fmt::format(" (fused [gate | up]: 2 x intermediate_size {})", I);
    l.gate_proj = load.rows(m + n.gate_up + ".weight", {2 * I, h}, gate, why, Part::mlp);
    l.up_proj = load.rows(m + n.gate_up + ".weight", {2 * I, h}, up, why, Part::mlp);
  } else {
    if (c.arch.mlp.gated) l.gate_proj = load.whole(m + n.gate + ".weight", {I, h}, "", Part::mlp);
    l.up_proj = load.whole(m + n.up + ".weight", {I, h}, "", Part::mlp);
    if (bias) {
      if (c.arch.mlp.gated) l.gate_bias = load.whole(m + n.gate + ".bias", {I}, "", Part::mlp);
      l.up_bias = load.whole(m + n.up + ".bias", {I}, "", Part::mlp);
    }
  }
  l.down_proj = load.whole(m + n.down + ".weight", {h, I}, "", Part::mlp);
  if (bias) l.down_bias = load.whole(m + n.down + ".bias", {h}, "", Part::mlp);
}

}  // namespace

std::uint64_t WeightView::row_count() const {
  if (!rows.empty()) return rows.size();
  return tensor.numel() / row_elements;
}

std::vector<std::uint64_t> WeightView::shape() const {
  if (tensor.shape().size() == 1 || row_elements == 1) return {row_count()};
  return {row_count(), column_count()};
}

void WeightView::to_float(std::span<float> out) const {
  if (out.size() != numel())
    throw Error(fmt::format("tensor {}: {} floats requested, the view has {}", tensor.name(), out.size(), numel()));
  if (!gathered()) return tensor.to_float(out);
  const std::byte* base = tensor.bytes().data();
  const std::uint64_t n = column_count(), count = row_count();
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t start = source_row(i) * row_elements + first_column;
    for (std::uint64_t j = 0; j < n; ++j) out[i * n + j] = io::load_as_float(base, tensor.dtype(), start + j);
  }
}

std::vector<float> WeightView::to_float() const {
  std::vector<float> out(numel());
  to_float(out);
  return out;
}

Model load_model(const std::filesystem::path& directory, const LoadOptions& options) {
  if (!std::filesystem::is_directory(directory))
    throw ArgumentError(fmt::format("model directory {} does not exist or is not a directory", directory.string()));
  Model m;
  m.directory = directory;
  m.config = load_model_config(directory / "config.json", &m.warnings);
  m.checkpoint = std::make_shared<const io::Checkpoint>(directory);
  const io::Checkpoint& ck = *m.checkpoint;
  ModelConfig& c = m.config;
  const TensorNames n = names_of(c);

  c.variant = resolve_variant(directory, c, options, ck, m.variant_source);
  try {
    m.layout = head_layout(c);
  } catch (const ArgumentError& e) {
    throw FormatError(fmt::format("{}: variant {}: {}", directory.string(), to_string(c.variant), e.what()));
  }

  // The dtype every weight must have.
  std::string dtype_reason = "config.json torch_dtype";
  if (!c.dtype_in_config) {
    if (ck.contains(n.embed)) c.dtype = ck.tensor(n.embed).dtype();
    dtype_reason = "the dtype of " + n.embed + "; config.json names none";
  }
  if (c.dtype != io::Dtype::F32 && c.dtype != io::Dtype::F16 && c.dtype != io::Dtype::BF16)
    throw FormatError(fmt::format("{}: unsupported dtype {} in tensor \"{}\" (expected F32, F16 or BF16)",
                                  directory.string(), io::to_string(c.dtype), n.embed));
  // Gemma's sqrt(hidden) is a tensor of the embedding dtype.
  if (c.arch.embedding_multiplier_in_weight_dtype)
    c.arch.embedding_multiplier = io::round_to_dtype(c.arch.embedding_multiplier, c.dtype);

  Loader load{ck, c.dtype, dtype_reason, {}, {}};
  const std::uint64_t h = c.hidden_size, V = c.vocab_size;
  Weights& w = m.weights;
  w.embed_tokens = load.whole(n.embed, {V, h}, "", Part::embedding);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = fmt::format(fmt::runtime(n.layer), i);
    LayerWeights l;
    l.attn_norm = load_norm(load, c, n.attn_norm.empty() ? "" : p + n.attn_norm);
    l.post_attn_norm = load_norm(load, c, n.post_attn_norm.empty() ? "" : p + n.post_attn_norm);
    l.mlp_norm = load_norm(load, c, n.mlp_norm.empty() ? "" : p + n.mlp_norm);
    l.post_mlp_norm = load_norm(load, c, n.post_mlp_norm.empty() ? "" : p + n.post_mlp_norm);
    load_attention(load, c, m.layout, n, p, l);
    load_mlp(load, c, n, p, l);
    w.layers.push_back(std::move(l));
  }
  w.norm = *load_norm(load, c, n.final_norm);
  w.lm_head = c.tie_word_embeddings ? w.embed_tokens
                                    : load.whole(n.lm_head, {V, h}, " (tie_word_embeddings is false)", Part::lm_head);
  m.parameters = load.counts;

  // Every tensor must be consumed; multimodal parts a text analysis never reads are listed once.
  std::map<std::string, int> ignored;
  for (const auto& name : ck.names()) {
    if (load.used.count(name)) continue;
    if (name.ends_with(".rotary_emb.inv_freq")) continue;  // buffers older transformers saved; recomputed
    bool skipped = false;
    for (const auto& prefix : c.ignored_tensor_prefixes)
      if (name.starts_with(prefix)) ++ignored[prefix], skipped = true;
    if (skipped) continue;
    throw FormatError(fmt::format("{}: unexpected tensor {} ({} does not use it{}); refusing a checkpoint that is "
                                  "not modelled exactly",
                                  ck.tensor(name).file().string(), io::json_quoted(name), c.arch.family,
                                  name == n.lm_head ? ": tie_word_embeddings is true" : ""));
  }
  for (const auto& [prefix, count] : ignored)
    m.warnings.push_back(fmt::format("{}: {} tensors under \"{}\" (not the language model) are not read",
                                     directory.string(), count, prefix));

  // No NaN or infinity in anything the model consumes.
  std::vector<io::TensorView> consumed;
  for (const auto& name : load.used) consumed.push_back(ck.tensor(name));
  check_finite(consumed);
  return m;
}

ParameterCounts count_parameters(const Model& model) { return model.parameters; }

}  // namespace ropescope::model
